package providertest_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/provider"
	"github.com/paygate/paygate/internal/provider/providertest"
)

func TestStartPayAndWaitDelivered(t *testing.T) {
	e := providertest.Start(t)
	var verified atomic.Int32
	paygate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ev, err := e.Verifier.Verify(r.Header, body)
		if err != nil || r.URL.Path != "/v1/callbacks/sandbox/payments" || ev.Payment.Status != provider.PaymentSucceeded {
			t.Errorf("callback %s %s: %+v, %v", r.URL.Path, body, ev, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		verified.Add(1)
	}))
	t.Cleanup(paygate.Close)
	e.Sandbox.SetCallbackBaseURL(paygate.URL)
	ctx := context.Background()
	p, err := e.Client.CreatePayment(ctx, provider.PaymentRequest{Reference: "tu-pt", Amount: 10000, Currency: "IDR",
		Method: "gopay", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Admin.Pay(ctx, p.ID, 0, ""); err != nil {
		t.Fatal(err)
	}
	if got := e.WaitDelivered(t, "tu-pt", 1); len(got) != 1 || verified.Load() != 1 {
		t.Errorf("deliveries %+v, %d verified", got, verified.Load())
	}
}
