package apidocs_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/notify/smtptest"
	"github.com/paygate/paygate/internal/platform/config"
)

// mailpitAddress and mailpitMessage are the parts of mailpit's
// GET /api/v1/messages answer that the tour reads.
type mailpitAddress struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

type mailpitMessage struct {
	ID        string           `json:"ID"`
	MessageID string           `json:"MessageID"`
	From      mailpitAddress   `json:"From"`
	To        []mailpitAddress `json:"To"`
	Subject   string           `json:"Subject"`
	Created   time.Time        `json:"Created"`
}

// mailpitAPI serves the test SMTP server's messages the way mailpit's
// HTTP API lists them, newest first, as `make run`'s inbox does.
func mailpitAPI(t *testing.T, srv *smtptest.Server) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/messages", func(w http.ResponseWriter, _ *http.Request) {
		msgs := srv.Messages()
		out := struct {
			Total    int              `json:"total"`
			Count    int              `json:"count"`
			Start    int              `json:"start"`
			Messages []mailpitMessage `json:"messages"`
		}{Total: len(msgs), Count: len(msgs), Messages: []mailpitMessage{}}
		for i := len(msgs) - 1; i >= 0; i-- {
			m := msgs[i]
			mm := mailpitMessage{ID: m.MessageID, MessageID: m.MessageID, From: mailpitAddress{Address: m.From},
				To: []mailpitAddress{}, Subject: m.Subject, Created: m.ReceivedAt}
			for _, to := range m.To {
				mm.To = append(mm.To, mailpitAddress{Address: to})
			}
			out.Messages = append(out.Messages, mm)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts.URL
}

// TestTourScript runs scripts/tour.sh, the README's quick tour, against a
// whole gateway with the email consumer, the payout processor and an SMTP
// server, through a proxy that validates every exchange against
// api/openapi.yaml. The mail step is not skipped.
func TestTourScript(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (make test installs it): %v", tool, err)
		}
	}
	smtp := smtptest.Start(t)
	// The sandbox pays every top-up by itself, as make run's does.
	e := startDocs(t, apptest.WithAutoPay(), apptest.WithConfig(func(c *config.Config) {
		c.SMTP.Host, c.SMTP.Port = smtp.Host, smtp.Port
		c.Notify.Enabled = true
		c.Payout.Enabled = true
	}))
	target, err := url.Parse(e.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = apptest.ContractTransport(t, http.DefaultTransport.(*http.Transport).Clone())
	gateway := httptest.NewServer(proxy)
	t.Cleanup(gateway.Close)

	_, here, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(here), "..", "..")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "tour.sh"))
	cmd.Dir = root
	cmd.Env = append(cmd.Environ(), "TOUR_BASE_URL="+gateway.URL, "TOUR_MAIL_URL="+mailpitAPI(t, smtp),
		"TOUR_MAIL_TIMEOUT=60", "TOUR_SETTLE_TIMEOUT=20", "TOUR_SKIP_MAIL=")
	out, err := cmd.CombinedOutput()
	t.Logf("scripts/tour.sh:\n%s", out)
	if err != nil {
		for _, m := range smtp.Messages() {
			t.Logf("mail to %v: %s", m.To, m.Subject)
		}
		t.Fatalf("scripts/tour.sh: %v", err)
	}
	for _, want := range []string{"tour complete", "Idempotent-Replayed: true", "INSUFFICIENT_FUNDS", `"status": "succeeded"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the tour's output lacks %q", want)
		}
	}
}
