package observability_test

import (
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/notify/smtptest"
	"github.com/paygate/paygate/internal/platform/config"
)

// otlpReceiver is a real OTLP/HTTP trace receiver on loopback: it decodes
// the protobuf export requests the SDK's exporter really sends.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	attrs map[*tracepb.Span]map[string]string
}

func startReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	r := &otlpReceiver{attrs: map[*tracepb.Span]map[string]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/v1/traces" {
			http.NotFound(w, req)
			return
		}
		body, _ := io.ReadAll(req.Body)
		var export collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &export); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range export.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					a := map[string]string{}
					for _, kv := range s.GetAttributes() {
						a[kv.GetKey()] = kv.GetValue().GetStringValue()
					}
					r.spans = append(r.spans, s)
					r.attrs[s] = a
				}
			}
		}
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		_, _ = w.Write(b)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r, "http://" + ln.Addr().String()
}

func (r *otlpReceiver) snapshot() ([]*tracepb.Span, map[*tracepb.Span]map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...), r.attrs
}

// TestOneTracePerPayment sends one transfer and follows it, through the
// spans the exporter really sent to an OTLP receiver, from the HTTP
// request through its SQL, the outbox relay's Kafka publish and the email
// consumer to the SMTP send: one trace id, each step the child of the one
// before.
func TestOneTracePerPayment(t *testing.T) {
	recv, endpoint := startReceiver(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
	mail := smtptest.Start(t)
	e := apptest.Start(t, apptest.WithConfig(func(c *config.Config) {
		c.SMTP.Host, c.SMTP.Port = mail.Host, mail.Port
		c.Notify.Enabled = true
	}))
	alice, bob := e.NewUser(t), e.NewUser(t)
	e.Fund(t, alice, 100000)
	r := e.Post(t, "/v1/transfers", alice.Token, map[string]any{"to": bob.Email, "amount": 25000}, "Idempotency-Key", "x")
	if r.Status != 201 {
		t.Fatalf("transfer: %d %s", r.Status, r.Body)
	}
	transferID := r.Map(t)["id"].(string)

	type hop struct{ server, db, publish, consume, smtp *tracepb.Span }
	var h hop
	var spans []*tracepb.Span
	var attrs map[*tracepb.Span]map[string]string
	deadline := time.Now().Add(45 * time.Second)
	for {
		spans, attrs = recv.snapshot()
		h = hop{}
		for _, s := range spans {
			if s.GetName() == "POST /v1/transfers" {
				h.server = s
			}
		}
		if h.server != nil {
			trace := h.server.GetTraceId()
			byID := map[string]*tracepb.Span{}
			for _, s := range spans {
				if string(s.GetTraceId()) == string(trace) {
					byID[string(s.GetSpanId())] = s
				}
			}
			// One pass per hop: each is found as the child of the one before.
			for _, s := range byID {
				if s.GetName() == "db InsertTransfers" && descends(byID, s, h.server) {
					h.db = s
				}
				if s.GetName() == "publish paygate.transfer.v1" {
					h.publish = s
				}
			}
			for _, s := range byID {
				if h.publish != nil && strings.HasPrefix(s.GetName(), "notify process") && string(s.GetParentSpanId()) == string(h.publish.GetSpanId()) {
					h.consume = s
				}
			}
			for _, s := range byID {
				if h.consume != nil && s.GetName() == "notify smtp send" && string(s.GetParentSpanId()) == string(h.consume.GetSpanId()) {
					h.smtp = s
				}
			}
			if time.Now().After(deadline) {
				for _, s := range byID {
					t.Logf("span %q id %x parent %x", s.GetName(), s.GetSpanId(), s.GetParentSpanId())
				}
			}
		}
		if h.server != nil && h.db != nil && h.publish != nil && h.consume != nil && h.smtp != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("incomplete trace after 45s: server=%v db=%v publish=%v consume=%v smtp=%v (%d spans received)",
				h.server != nil, h.db != nil, h.publish != nil, h.consume != nil, h.smtp != nil, len(spans))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if string(h.publish.GetParentSpanId()) != string(h.server.GetSpanId()) {
		t.Errorf("publish span's parent is %s, want the HTTP server span %s",
			hex.EncodeToString(h.publish.GetParentSpanId()), hex.EncodeToString(h.server.GetSpanId()))
	}
	if h.server.GetKind() != tracepb.Span_SPAN_KIND_SERVER || h.publish.GetKind() != tracepb.Span_SPAN_KIND_PRODUCER ||
		h.consume.GetKind() != tracepb.Span_SPAN_KIND_CONSUMER {
		t.Errorf("span kinds: server %v, publish %v, consume %v", h.server.GetKind(), h.publish.GetKind(), h.consume.GetKind())
	}
	for _, s := range []*tracepb.Span{h.server, h.publish, h.consume, h.smtp} {
		if attrs[s]["paygate.domain"] == "" {
			t.Errorf("span %q has no paygate.domain", s.GetName())
		}
	}
	// No span anywhere carries a password, a token or an email address.
	for _, s := range spans {
		for k, v := range attrs[s] {
			if strings.Contains(v, alice.Password) || strings.Contains(v, alice.Token) || strings.Contains(v, "@paygate.test") {
				t.Errorf("span %q attribute %s leaks %q", s.GetName(), k, v)
			}
		}
	}
	t.Logf("transfer %s: trace %s, %d spans received", transferID, hex.EncodeToString(h.server.GetTraceId()), len(spans))
}

// descends reports whether s is anc or one of its descendants in spans.
func descends(spans map[string]*tracepb.Span, s, anc *tracepb.Span) bool {
	for hops := 0; s != nil && hops < 64; hops++ {
		if string(s.GetSpanId()) == string(anc.GetSpanId()) {
			return true
		}
		s = spans[string(s.GetParentSpanId())]
	}
	return false
}
