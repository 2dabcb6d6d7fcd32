package apidocs_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/apidocs"
)

// chromium finds a headless-capable Chromium. It fails, never skips, when
// there is none: scripts/test.sh installs Debian's chromium package.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("PAYGATE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH (apt-get install chromium; make test installs it), or set PAYGATE_CHROMIUM")
	return ""
}

// TestDocsRenderInChromium loads /docs from a running gateway in headless
// Chromium, under the page's real Content-Security-Policy, and checks that
// Redoc rendered the operations from the served spec.
func TestDocsRenderInChromium(t *testing.T) {
	t.Parallel()
	requireBundle(t)
	bin := chromium(t)
	e := startDocs(t)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--user-data-dir="+t.TempDir(), "--enable-logging=stderr", "--v=0",
		"--virtual-time-budget=15000", "--dump-dom", e.BaseURL+apidocs.DocsPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, tail(stderr.String(), 4000))
	}
	dom := stdout.String()
	for _, summary := range []string{"Create a transfer", "Create a top-up", "Create a withdrawal", "Register a user",
		"Log in", "Get your saldo", "Get your statement", "Reverse a transfer", "List users", "Verify the ledger"} {
		if !strings.Contains(dom, summary) {
			t.Errorf("the rendered docs lack the operation %q", summary)
		}
	}
	for _, text := range []string{"paygate API", "Idempotency-Key", "IDEMPOTENCY_KEY_REUSED", "american express"} {
		if !strings.Contains(dom, text) {
			t.Errorf("the rendered docs lack %q", text)
		}
	}
	// Chromium logs every Content-Security-Policy violation to the console:
	// the policy must let Redoc work, not just load. The one violation
	// expected is the point of the policy: Redoc's sidebar credit links a
	// logo on Redocly's CDN, which is blocked (the image hides itself).
	cdnBlocked := false
	for _, line := range strings.Split(stderr.String(), "\n") {
		if !strings.Contains(line, "Content Security Policy") {
			continue
		}
		if strings.Contains(line, "'https://cdn.redoc.ly/redoc/logo-mini.svg'") && strings.Contains(line, "has been blocked") {
			cdnBlocked = true
			continue
		}
		t.Errorf("CSP violation: %s", line)
	}
	if !cdnBlocked {
		t.Log("Redoc did not try to load its CDN logo (a new Redoc version?)")
	}
	if t.Failed() {
		t.Logf("DOM (%d bytes): %s", len(dom), tail(dom, 3000))
		t.Logf("chromium log: %s", tail(stderr.String(), 3000))
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
