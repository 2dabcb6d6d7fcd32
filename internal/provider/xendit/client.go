// Package xendit is paygate's adapter to Xendit's documented HTTP API:
// payment requests (Payments API v3) and payment sessions (hosted
// checkout) for top-ups, payouts v2 for withdrawals, the transactions list
// for reconciliation, and the x-callback-token webhooks.
//
// Every call authenticates with HTTP basic auth (the secret key as user
// name, an empty password). Every create carries an idempotency key, the
// request's Reference, so that a retry never creates a second object; the
// adapter retries only those creates and GETs, only on an unknown outcome
// (a timeout, a connection error, a 5xx), never on a 4xx.
package xendit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/paygate/paygate/internal/platform/periodic"

	"github.com/paygate/paygate/internal/provider"
)

// DefaultBaseURL is Xendit's API.
const DefaultBaseURL = "https://api.xendit.co"

// Options configure a Client.
type Options struct {
	// BaseURL is the API's root; DefaultBaseURL when empty. Point it at a
	// sandbox.Server to talk to the local sandbox.
	BaseURL string
	// SecretKey is the secret API key (basic auth user name). Required.
	SecretKey string
	// Timeout bounds one HTTP attempt; 10 s when zero.
	Timeout time.Duration
	// MaxAttempts bounds the attempts of a retryable call; 3 when zero.
	MaxAttempts int
	// Backoff is the wait before the second attempt, doubled before each
	// further one (with jitter); 200 ms when zero.
	Backoff time.Duration
	// SuccessReturnURL and FailureReturnURL are where the provider's pages
	// send the customer back after a redirect flow; optional (HTTPS).
	SuccessReturnURL string
	FailureReturnURL string
	// HTTPClient sends the requests (e.g. with an otelhttp transport); a
	// plain client when nil. Leave its Timeout zero: Timeout applies per
	// attempt.
	HTTPClient *http.Client
	// Name is the provider's name; provider.Xendit when empty.
	Name provider.Name
}

// Client is the Xendit adapter; it implements provider.Client.
type Client struct {
	base    *url.URL
	key     string
	opts    Options
	http    *http.Client
	name    provider.Name
	sleep   func(context.Context, time.Duration) error
	nowFunc func() time.Time
}

var _ provider.Client = (*Client)(nil)

// New returns a Client for opts.
func New(opts Options) (*Client, error) {
	if opts.SecretKey == "" {
		return nil, errors.New("xendit: a secret key is required")
	}
	if opts.BaseURL == "" {
		opts.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(strings.TrimRight(opts.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("xendit: base URL %q is not an http(s) URL", opts.BaseURL)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 3
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 200 * time.Millisecond
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	name := opts.Name
	if name == "" {
		name = provider.Xendit
	}
	return &Client{base: base, key: opts.SecretKey, opts: opts, http: hc, name: name,
		sleep: sleepCtx, nowFunc: time.Now}, nil
}

// Name returns the provider's name.
func (c *Client) Name() provider.Name { return c.name }

// call is one API call.
type call struct {
	method string
	path   string // escaped path, may carry a query
	key    string // idempotency key of a create
	body   any
	out    any
	// notFound maps a 404 to provider.ErrNotFound (reads of one object).
	notFound bool
}

// do runs a call, retrying on an unknown outcome: every call the adapter
// makes is a GET or a create under an idempotency key, so a retry is safe.
func (c *Client) do(ctx context.Context, cl call) error {
	var payload []byte
	if cl.body != nil {
		b, err := json.Marshal(cl.body)
		if err != nil {
			return fmt.Errorf("xendit: encode %s %s: %w", cl.method, cl.path, err)
		}
		payload = b
	}
	wait := c.opts.Backoff
	var err error
	for attempt := 1; ; attempt++ {
		var retry bool
		retry, err = c.attempt(ctx, cl, payload)
		if err == nil || !retry || attempt >= c.opts.MaxAttempts {
			return err
		}
		jitter := time.Duration(rand.Int64N(int64(wait)/2 + 1))
		if serr := c.sleep(ctx, wait+jitter); serr != nil {
			return err
		}
		wait *= 2
	}
}

// attempt sends one HTTP request and reports whether a failure may be
// retried.
func (c *Client) attempt(ctx context.Context, cl call, payload []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, c.base.String()+cl.path, body)
	if err != nil {
		return false, fmt.Errorf("xendit: %s %s: %w", cl.method, cl.path, err)
	}
	req.SetBasicAuth(c.key, "")
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.key != "" {
		req.Header.Set(HeaderIdempotencyKey, cl.key)
	}
	if strings.HasPrefix(cl.path, PathPaymentRequests) {
		req.Header.Set(HeaderAPIVersion, PaymentsAPIVersion)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return true, fmt.Errorf("xendit: %s %s: %w: %w", cl.method, cl.path, provider.ErrUnavailable, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return true, fmt.Errorf("xendit: %s %s: read answer: %w: %w", cl.method, cl.path, provider.ErrUnavailable, err)
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if cl.out == nil {
			return false, nil
		}
		if err := json.Unmarshal(raw, cl.out); err != nil {
			// A 2xx whose body cannot be read: the create happened, its
			// answer is lost; a retry with the same key returns it again.
			return true, fmt.Errorf("xendit: %s %s: decode answer: %w: %w", cl.method, cl.path, provider.ErrUnavailable, err)
		}
		return false, nil
	case resp.StatusCode >= 500:
		return true, fmt.Errorf("xendit: %s %s: status %d%s: %w", cl.method, cl.path, resp.StatusCode, errorCode(raw), provider.ErrUnavailable)
	case resp.StatusCode == http.StatusTooManyRequests:
		// Not processed; safe to retry later, but not at once.
		return false, fmt.Errorf("xendit: %s %s: status 429%s: %w", cl.method, cl.path, errorCode(raw), provider.ErrUnavailable)
	case resp.StatusCode == http.StatusNotFound && cl.notFound:
		return false, fmt.Errorf("xendit: %s %s: %w", cl.method, cl.path, provider.ErrNotFound)
	default:
		return false, fmt.Errorf("xendit: %s %s: status %d%s: %w", cl.method, cl.path, resp.StatusCode, errorCode(raw), provider.ErrRejected)
	}
}

// errorCode returns ", CODE: message" from an error answer, or "".
func errorCode(raw []byte) string {
	var e ErrorBody
	if json.Unmarshal(raw, &e) != nil || e.ErrorCode == "" {
		return ""
	}
	msg := e.Message
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return ", " + e.ErrorCode + ": " + msg
}

// sleepCtx waits d or until ctx ends, with ctx's error then.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if !periodic.Sleep(ctx, d) {
		return ctx.Err()
	}
	return nil
}

// FormatTime formats a time the way Xendit's API does (RFC 3339, UTC,
// milliseconds).
func FormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// parseTime reads a time of Xendit's API; the zero time when empty or
// malformed.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
