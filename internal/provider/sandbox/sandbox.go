// Package sandbox is a local payment provider: an HTTP server that speaks
// the subset of Xendit's API that package xendit uses (payment requests,
// payment sessions, payouts v2, the transactions list, basic auth,
// idempotency keys) and delivers webhooks in Xendit's format, with the
// x-callback-token header, retrying with exponential backoff until a 2xx.
// paygate talks to it with the xendit adapter pointed at its URL.
//
// Under /_sandbox it offers what a real provider does not: "the customer
// pays" (optionally another amount or currency), "expire", faults (failed
// or slow creates, failing payouts, duplicated, delayed, held and
// reordered or dropped callbacks, globally or per reference), settled
// transactions dropped or amended (books that disagree, for
// reconciliation), the list of callback deliveries and counters of creates
// per idempotency key.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/provider/xendit"
)

// Default callback paths at paygate.
const (
	DefaultPaymentsCallbackPath = "/v1/callbacks/sandbox/payments"
	DefaultPayoutsCallbackPath  = "/v1/callbacks/sandbox/payouts"
)

// Options configure a Server.
type Options struct {
	// SecretKey is the API key clients must send (basic auth user name).
	// Required.
	SecretKey string
	// CallbackToken is sent as x-callback-token with every callback.
	CallbackToken string
	// CallbackBaseURL is paygate's root URL, e.g. http://127.0.0.1:8080;
	// without it callbacks are recorded but not sent.
	CallbackBaseURL string
	// PaymentsCallbackPath and PayoutsCallbackPath are appended to
	// CallbackBaseURL; the Default… paths when empty.
	PaymentsCallbackPath string
	PayoutsCallbackPath  string
	// AutoPay pays every new payment in full after AutoPayDelay (1 s when
	// zero).
	AutoPay      bool
	AutoPayDelay time.Duration
	// PayoutDelay is how long a payout stays ACCEPTED; 500 ms when zero.
	PayoutDelay time.Duration
	// RetryBase is the wait before a callback's second attempt, doubled
	// after each failure up to RetryMax; 200 ms and 30 s when zero.
	RetryBase time.Duration
	RetryMax  time.Duration
	// MaxAttempts bounds the attempts of one callback; zero retries until
	// the server closes (Xendit retries for about 24 h).
	MaxAttempts int
	// CallbackTimeout bounds one callback attempt; 30 s when zero, as
	// Xendit.
	CallbackTimeout time.Duration
	// MaxInFlight bounds the callback attempts in flight at once; 8 when
	// zero. A provider's webhook dispatcher paces its deliveries per
	// merchant; without a bound, a backlog of retries (after an outage)
	// would reach the gateway all at once.
	MaxInFlight int
	// StateFile, when set, keeps payments, payouts, idempotency keys and
	// transactions across restarts (JSON).
	StateFile string
	// Logger logs deliveries and state changes; zap.NewNop when nil.
	Logger *zap.Logger
	// HTTPClient sends callbacks; a plain client when nil.
	HTTPClient *http.Client
}

// Server is the sandbox provider.
type Server struct {
	opts Options
	log  *zap.Logger
	http *http.Client
	mux  *http.ServeMux

	ctx    context.Context // ends at Close: stops timers and deliveries
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// inFlight holds a token per callback attempt being sent.
	inFlight chan struct{}

	mu        sync.Mutex
	st        state
	faults    Faults
	perRef    map[string]*Faults
	perAmount map[int64]*Faults
	held      []*delivery
	dels      []*delivery
	stats     counters

	srv *http.Server
	url string
}

// state is what the sandbox keeps (and persists).
type state struct {
	Payments     map[string]*payment   `json:"payments"`
	Payouts      map[string]*payout    `json:"payouts"`
	Idempotency  map[string]idemRecord `json:"idempotency"`
	Transactions []xendit.Transaction  `json:"transactions"`
	Seq          int                   `json:"seq"`
}

// payment is a payment request or a session.
type payment struct {
	Request      *xendit.PaymentRequestObject `json:"request,omitempty"`
	Session      *xendit.SessionObject        `json:"session,omitempty"`
	ExpiresAt    time.Time                    `json:"expires_at"`
	PaymentID    string                       `json:"payment_id,omitempty"`
	PaidAmount   int64                        `json:"paid_amount,omitempty"`
	PaidCurrency string                       `json:"paid_currency,omitempty"`
	Seq          int                          `json:"seq"`
}

func (p *payment) id() string {
	if p.Session != nil {
		return p.Session.PaymentSessionID
	}
	return p.Request.PaymentRequestID
}

func (p *payment) reference() string {
	if p.Session != nil {
		return p.Session.ReferenceID
	}
	return p.Request.ReferenceID
}

// target is what the payment's faults are chosen by.
func (p *payment) target() target {
	if p.Session != nil {
		return target{Reference: p.Session.ReferenceID, Amount: p.Session.Amount}
	}
	return target{Reference: p.Request.ReferenceID, Amount: p.Request.RequestAmount}
}

func (p *payment) pending() bool {
	if p.Session != nil {
		return p.Session.Status == xendit.SessionActive
	}
	return p.Request.Status == xendit.PRStatusRequiresAction
}

// payout is a payout and whether it still has to settle.
type payout struct {
	Object xendit.PayoutObject `json:"object"`
}

// idemRecord is what an idempotency key created.
type idemRecord struct {
	Fingerprint string `json:"fingerprint"`
	ObjectID    string `json:"object_id"`
}

// counters are the sandbox's statistics.
type counters struct {
	creates map[string]int
}

// New returns a Server for opts; it loads opts.StateFile if it exists.
func New(opts Options) (*Server, error) {
	if opts.SecretKey == "" {
		return nil, errors.New("sandbox: a secret key is required")
	}
	if opts.PaymentsCallbackPath == "" {
		opts.PaymentsCallbackPath = DefaultPaymentsCallbackPath
	}
	if opts.PayoutsCallbackPath == "" {
		opts.PayoutsCallbackPath = DefaultPayoutsCallbackPath
	}
	if opts.AutoPayDelay <= 0 {
		opts.AutoPayDelay = time.Second
	}
	if opts.PayoutDelay <= 0 {
		opts.PayoutDelay = 500 * time.Millisecond
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = 200 * time.Millisecond
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 30 * time.Second
	}
	if opts.CallbackTimeout <= 0 {
		opts.CallbackTimeout = 30 * time.Second
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 8
	}
	opts.CallbackBaseURL = strings.TrimRight(opts.CallbackBaseURL, "/")
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{opts: opts, log: log, http: hc, ctx: ctx, cancel: cancel, inFlight: make(chan struct{}, opts.MaxInFlight),
		st:     state{Payments: map[string]*payment{}, Payouts: map[string]*payout{}, Idempotency: map[string]idemRecord{}},
		perRef: map[string]*Faults{}, perAmount: map[int64]*Faults{}, stats: counters{creates: map[string]int{}}}
	if err := s.load(); err != nil {
		cancel()
		return nil, err
	}
	s.mux = http.NewServeMux()
	s.routes()
	s.resume()
	return s, nil
}

// Handler serves the API and the /_sandbox admin API.
func (s *Server) Handler() http.Handler { return s.mux }

// Start listens on addr (e.g. 127.0.0.1:0), serves until Close and
// returns the base URL; it also starts expiring overdue payments.
func (s *Server) Start(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("sandbox: listen: %w", err)
	}
	s.url = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s.mux, ReadHeaderTimeout: 5 * time.Second}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("sandbox: serve", zap.Error(err))
		}
	}()
	go func() {
		defer s.wg.Done()
		s.expireLoop()
	}()
	return s.url, nil
}

// URL is the base URL after Start.
func (s *Server) URL() string { return s.url }

// Close stops serving, cancels pending timers and callback deliveries and
// waits for them.
func (s *Server) Close() error {
	s.cancel()
	var err error
	if s.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = s.srv.Shutdown(ctx)
	}
	s.wg.Wait()
	return err
}

// expireLoop expires payments whose expiry passed.
func (s *Server) expireLoop() {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			for _, p := range s.st.Payments {
				if p.pending() && !p.ExpiresAt.IsZero() && now.After(p.ExpiresAt) {
					s.expireLocked(p)
				}
			}
			s.mu.Unlock()
		}
	}
}

// after runs f after d unless the server closes first.
func (s *Server) after(d time.Duration, f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			f()
		case <-s.ctx.Done():
		}
	}()
}

// resume schedules what a loaded state still owes: payouts to settle.
func (s *Server) resume() {
	for _, p := range s.st.Payouts {
		if p.Object.Status == xendit.PayoutStatusAccepted {
			s.schedulePayout(p.Object.ID)
		}
	}
}

// newID returns prefix and random hex.
func newID(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// digits returns n random decimal digits.
func digits(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	return string(b)
}

// findPaymentLocked finds a payment by id, or the latest by reference.
func (s *Server) findPaymentLocked(idOrRef string) *payment {
	if p, ok := s.st.Payments[idOrRef]; ok {
		return p
	}
	var best *payment
	for _, p := range s.st.Payments {
		if p.reference() == idOrRef && (best == nil || p.Seq > best.Seq) {
			best = p
		}
	}
	return best
}

// nextSeq numbers objects in creation order.
func (s *Server) nextSeq() int {
	s.st.Seq++
	return s.st.Seq
}

// load reads the state file, if any.
func (s *Server) load() error {
	if s.opts.StateFile == "" {
		return nil
	}
	b, err := os.ReadFile(s.opts.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sandbox: read state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("sandbox: state file %s: %w", s.opts.StateFile, err)
	}
	if st.Payments != nil {
		s.st.Payments = st.Payments
	}
	if st.Payouts != nil {
		s.st.Payouts = st.Payouts
	}
	if st.Idempotency != nil {
		s.st.Idempotency = st.Idempotency
	}
	s.st.Transactions, s.st.Seq = st.Transactions, st.Seq
	return nil
}

// saveLocked writes the state file, if any (atomically).
func (s *Server) saveLocked() {
	if s.opts.StateFile == "" {
		return
	}
	b, err := json.Marshal(s.st)
	if err == nil {
		tmp := s.opts.StateFile + ".tmp"
		if err = os.MkdirAll(filepath.Dir(s.opts.StateFile), 0o700); err == nil {
			if err = os.WriteFile(tmp, b, 0o600); err == nil {
				err = os.Rename(tmp, s.opts.StateFile)
			}
		}
	}
	if err != nil {
		s.log.Error("sandbox: save state", zap.Error(err))
	}
}

// Stats are the sandbox's counters.
type Stats struct {
	// Creates counts create requests per idempotency key, every attempt
	// included (also those answered with a fault).
	Creates map[string]int `json:"creates"`
	// PaymentsByReference and PayoutsByReference count the objects
	// created per reference: a payout made twice shows 2.
	PaymentsByReference map[string]int `json:"payments_by_reference"`
	PayoutsByReference  map[string]int `json:"payouts_by_reference"`
	Payments            int            `json:"payments"`
	Payouts             int            `json:"payouts"`
	// Callbacks count deliveries by status.
	Callbacks map[DeliveryStatus]int `json:"callbacks"`
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Creates: map[string]int{}, PaymentsByReference: map[string]int{}, PayoutsByReference: map[string]int{},
		Payments: len(s.st.Payments), Payouts: len(s.st.Payouts), Callbacks: map[DeliveryStatus]int{}}
	for k, v := range s.stats.creates {
		st.Creates[k] = v
	}
	for _, p := range s.st.Payments {
		st.PaymentsByReference[p.reference()]++
	}
	for _, p := range s.st.Payouts {
		st.PayoutsByReference[p.Object.ReferenceID]++
	}
	for _, d := range s.dels {
		st.Callbacks[d.Status]++
	}
	return st
}

// sortedTransactionsLocked returns the transactions in creation order.
func (s *Server) sortedTransactionsLocked() []xendit.Transaction {
	out := append([]xendit.Transaction(nil), s.st.Transactions...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created < out[j].Created })
	return out
}

// SetCallbackBaseURL changes where callbacks go (paygate's root URL), for
// a test that starts paygate after the sandbox; "" sends none.
func (s *Server) SetCallbackBaseURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.CallbackBaseURL = strings.TrimRight(u, "/")
}
