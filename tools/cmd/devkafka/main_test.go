package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestParseLoopbackAddr(t *testing.T) {
	tests := []struct {
		addr     string
		wantHost string
		wantPort int
		wantErr  bool
	}{
		{addr: "127.0.0.1:9092", wantHost: "127.0.0.1", wantPort: 9092},
		{addr: "localhost:9093", wantHost: "127.0.0.1", wantPort: 9093},
		{addr: ":0", wantHost: "127.0.0.1", wantPort: 0},
		{addr: "[::1]:9092", wantHost: "::1", wantPort: 9092},
		{addr: "0.0.0.0:9092", wantErr: true},
		{addr: "10.1.2.3:9092", wantErr: true},
		{addr: "example.com:9092", wantErr: true},
		{addr: "127.0.0.1", wantErr: true},
		{addr: "127.0.0.1:http", wantErr: true},
		{addr: "127.0.0.1:70000", wantErr: true},
	}
	for _, tt := range tests {
		host, port, err := parseLoopbackAddr(tt.addr)
		if tt.wantErr {
			if err == nil {
				t.Errorf("parseLoopbackAddr(%q) = %q, %d, want an error", tt.addr, host, port)
			}
			continue
		}
		if err != nil || host != tt.wantHost || port != tt.wantPort {
			t.Errorf("parseLoopbackAddr(%q) = %q, %d, %v, want %q, %d", tt.addr, host, port, err, tt.wantHost, tt.wantPort)
		}
	}
}

func TestServeRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-addr", "0.0.0.0:0"},
		{"-partitions", "0"},
		{"-log-level", "loud"},
		{"extra"},
	} {
		if err := serve(context.Background(), args, io.Discard); err == nil {
			t.Errorf("serve(%q) succeeded, want an error", args)
		}
	}
}

// startBroker runs serve in the background and returns the broker address
// and a function that stops it and reports serve's error.
func startBroker(t *testing.T, args ...string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("reading ready line: %v (serve: %v)", err, <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "devkafka: listening on ")
	if !ok || !strings.HasPrefix(addr, "127.0.0.1:") {
		cancel()
		t.Fatalf("unexpected ready line %q", line)
	}
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("serve did not return after cancel")
			return nil
		}
	}
	return addr, stop
}

func produceAndCount(t *testing.T, addr, topic string, produce bool) int {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if produce {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("hello")}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	n := 0
	for n == 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no record consumed: %v", ctx.Err())
		}
		fetches.EachRecord(func(*kgo.Record) { n++ })
	}
	return n
}

func TestServeAutoCreatesTopicsAndPersists(t *testing.T) {
	dir := t.TempDir()

	addr, stop := startBroker(t, "-data-dir", dir, "-partitions", "2")
	if got := produceAndCount(t, addr, "orders", true); got != 1 {
		t.Fatalf("consumed %d records, want 1", got)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}

	// A restart on the same data dir keeps the record.
	addr, stop = startBroker(t, "-data-dir", dir)
	if got := produceAndCount(t, addr, "orders", false); got != 1 {
		t.Fatalf("after restart consumed %d records, want 1", got)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
}
