// Package providertest starts an in-process sandbox provider on a
// loopback port for tests, with the xendit adapter and the callback
// verifier that talk to it.
package providertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/provider/sandbox"
	"github.com/paygate/paygate/internal/provider/xendit"
)

// The test credentials of Start.
const (
	SecretKey     = "xnd_development_providertest"
	CallbackToken = "providertest-callback-token"
)

// Env is a running sandbox and what talks to it.
type Env struct {
	Sandbox  *sandbox.Server
	URL      string // the sandbox's base URL, for xendit.Options.BaseURL
	Client   *xendit.Client
	Verifier *xendit.Verifier
	Admin    sandbox.AdminClient
}

// Start runs a sandbox on 127.0.0.1 until the test ends. Its payouts
// settle after 20 ms and callbacks are retried after 10 ms (at most 500 ms
// apart); opts change the options, e.g. the CallbackBaseURL (which
// Env.Sandbox.SetCallbackBaseURL can also set later).
func Start(t testing.TB, opts ...func(*sandbox.Options)) *Env {
	t.Helper()
	o := sandbox.Options{SecretKey: SecretKey, CallbackToken: CallbackToken, PayoutDelay: 20 * time.Millisecond,
		RetryBase: 10 * time.Millisecond, RetryMax: 500 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	sb, err := sandbox.New(o)
	if err != nil {
		t.Fatal(err)
	}
	url, err := sb.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Close() })
	cl, err := xendit.New(xendit.Options{BaseURL: url, SecretKey: o.SecretKey, Timeout: 2 * time.Second,
		Backoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &Env{Sandbox: sb, URL: url, Client: cl, Verifier: xendit.NewVerifier(o.CallbackToken),
		Admin: sandbox.AdminClient{BaseURL: url}}
}

// WaitFor polls cond every 10 ms until it holds, and fails the test after
// 10 s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitDelivered waits until n callbacks about reference were answered
// with a 2xx, and returns them.
func (e *Env) WaitDelivered(t testing.TB, reference string, n int) []sandbox.Delivery {
	t.Helper()
	var got []sandbox.Delivery
	WaitFor(t, fmt.Sprintf("%d delivered callbacks about %s", n, reference), func() bool {
		got = got[:0]
		for _, d := range e.Sandbox.Deliveries() {
			if d.Reference == reference && d.Status == sandbox.DeliveryDelivered {
				got = append(got, d)
			}
		}
		return len(got) >= n
	})
	return got
}
