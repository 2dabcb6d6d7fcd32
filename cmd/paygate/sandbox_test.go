package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/provider"
	"github.com/paygate/paygate/internal/provider/xendit"
)

// TestSandboxCommand runs `paygate sandbox` on a free port, creates two
// payments through the xendit adapter against it, and tells it from the
// command line that the customer paid one and that the other expired;
// cancelling the context stops it.
func TestSandboxCommand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- sandboxCmd(ctx, []string{"-listen", "127.0.0.1:0", "-callback-url", "", "-secret-key", "k-test", "-callback-token", "t-test"}, pw)
		_ = pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no start line: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	fields := strings.Fields(line)
	url := ""
	for _, f := range fields {
		if strings.HasPrefix(f, "http://") {
			url = f
			break
		}
	}
	if url == "" {
		t.Fatalf("start line names no URL: %q", line)
	}
	client, err := xendit.New(xendit.Options{BaseURL: url, SecretKey: "k-test"})
	if err != nil {
		t.Fatal(err)
	}
	create := func(ref string) provider.Payment {
		p, err := client.CreatePayment(ctx, provider.PaymentRequest{Reference: ref, Amount: 150000, Currency: "IDR",
			Method: "bca", ExpiresAt: time.Now().Add(time.Hour).UTC().Truncate(time.Second), CustomerName: "Ann"})
		if err != nil {
			t.Fatalf("create %s: %v", ref, err)
		}
		return p
	}
	paid, expired := create("ref-paid"), create("ref-expired")

	var out bytes.Buffer
	if err := sandboxCmd(ctx, []string{"pay", "ref-paid", "-url", url}, &out); err != nil {
		t.Fatalf("sandbox pay: %v", err)
	}
	if !strings.Contains(out.String(), "paid 150000 IDR") {
		t.Fatalf("sandbox pay said %q", out.String())
	}
	if p, err := client.GetPayment(ctx, paid.ID); err != nil || p.Status != provider.PaymentSucceeded || p.PaidAmount != 150000 {
		t.Fatalf("after pay: %+v %v", p, err)
	}
	out.Reset()
	if err := sandboxCmd(ctx, []string{"expire", expired.ID, "-url", url}, &out); err != nil {
		t.Fatalf("sandbox expire: %v", err)
	}
	if p, err := client.GetPayment(ctx, expired.ID); err != nil || p.Status != provider.PaymentExpired {
		t.Fatalf("after expire: %+v %v", p, err)
	}
	if err := sandboxCmd(ctx, []string{"pay"}, io.Discard); err == nil {
		t.Fatal("sandbox pay without a payment was accepted")
	}
	if err := sandboxCmd(ctx, []string{"pay", "nobody", "-url", url}, io.Discard); err == nil {
		t.Fatal("paying an unknown payment succeeded")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sandbox stopped with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the sandbox did not stop when its context ended")
	}
}
