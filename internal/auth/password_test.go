package auth

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/platform/apperr"
)

func newTestHasher(t *testing.T, l HashLimits) *Hasher {
	t.Helper()
	h, err := NewHasher(HashParams{MemoryKiB: 1024, Time: 1, Threads: 1}, l)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// waitQueued yields until n requests wait for a slot.
func waitQueued(t *testing.T, h *Hasher, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.waiting() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d waiting, want %d", h.waiting(), n)
		}
		runtime.Gosched()
	}
}

// isBusy reports whether err is ErrBusy with a Retry-After.
func isBusy(err error) bool {
	var e *apperr.Error
	return errors.Is(err, ErrBusy) && errors.As(err, &e) && e.RetryAfter >= time.Second
}

// TestHashQueueIsBoundedAndServesVerificationsFirst checks the shape of
// the hashing queue: requests beyond it are shed at once with ErrBusy,
// new passwords may fill only half of it, and a freed slot goes to a
// waiting verification before a waiting new password.
func TestHashQueueIsBoundedAndServesVerificationsFirst(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, HashLimits{Concurrency: 1, Queue: 4, MaxWait: time.Minute})
	ctx := context.Background()
	if err := h.acquire(ctx, false); err != nil { // the only slot
		t.Fatal(err)
	}
	got := make(chan string, 8)
	wait := func(name string, newPassword bool) {
		go func() {
			if err := h.acquire(ctx, newPassword); err != nil {
				got <- "error " + err.Error()
				return
			}
			got <- name
		}()
	}
	wait("new-1", true)
	waitQueued(t, h, 1)
	wait("new-2", true)
	waitQueued(t, h, 2)
	// New passwords may fill half of the queue: the third is shed.
	if err := h.acquire(ctx, true); !isBusy(err) {
		t.Fatalf("third new password: %v, want ErrBusy", err)
	}
	if err := h.Admit(true); !isBusy(err) {
		t.Fatalf("Admit(new password) with its half full: %v", err)
	}
	if err := h.Admit(false); err != nil {
		t.Fatalf("Admit(verify) with room: %v", err)
	}
	wait("verify-1", false)
	waitQueued(t, h, 3)
	wait("verify-2", false)
	waitQueued(t, h, 4)
	// The queue is full: a verification is shed too, at once.
	if err := h.acquire(ctx, false); !isBusy(err) {
		t.Fatalf("verification with the queue full: %v, want ErrBusy", err)
	}
	// Freed slots go to the verifications first, in order, then to the
	// new passwords, in order.
	held := false // the class of the slot held now: the first, a verify
	for _, want := range []string{"verify-1", "verify-2", "new-1", "new-2"} {
		h.release(held)
		if g := <-got; g != want {
			t.Fatalf("slot went to %s, want %s", g, want)
		}
		held = want[:3] == "new"
	}
	h.release(held)
	if h.waiting() != 0 || h.free != 1 || h.newRunning != 0 {
		t.Fatalf("after draining: %d waiting, %d free", h.waiting(), h.free)
	}
}

// TestHashQueueShedsALongWait checks that a request waits at most MaxWait
// and leaves the queue when it gives up, by timeout or cancellation.
func TestHashQueueShedsALongWait(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, HashLimits{Concurrency: 1, Queue: 4, MaxWait: 20 * time.Millisecond})
	ctx := context.Background()
	if err := h.acquire(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Verify(ctx, "password", h.dummy); !isBusy(err) {
		t.Fatalf("verify behind a held slot: %v, want ErrBusy", err)
	}
	if h.waiting() != 0 {
		t.Fatalf("%d still waiting after the timeout", h.waiting())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.Hash(cctx, "password"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled hash: %v", err)
	}
	if h.waiting() != 0 {
		t.Fatalf("%d still waiting after the cancellation", h.waiting())
	}
	h.release(false)
	if _, err := h.Hash(ctx, "password"); err != nil {
		t.Fatalf("hash with a free slot: %v", err)
	}
}

// TestNewPasswordsLeaveASlotForVerifications checks that new passwords
// run in at most half of the slots: with two, a second registration waits
// while one runs, and a login takes the other slot at once.
func TestNewPasswordsLeaveASlotForVerifications(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, HashLimits{Concurrency: 2, Queue: 8, MaxWait: time.Minute})
	ctx := context.Background()
	if err := h.acquire(ctx, true); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- h.acquire(ctx, true) }()
	waitQueued(t, h, 1)
	if err := h.acquire(ctx, false); err != nil { // the free slot, at once
		t.Fatal(err)
	}
	h.release(false)
	h.mu.Lock()
	free, running, waiting := h.free, h.newRunning, len(h.news)
	h.mu.Unlock()
	if free != 1 || running != 1 || waiting != 1 {
		t.Fatalf("after the login: %d free, %d new running, %d new waiting; the second new password must wait for the first", free, running, waiting)
	}
	h.release(true)
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	h.release(true)
	if h.free != 2 || h.newRunning != 0 || h.waiting() != 0 {
		t.Fatalf("after draining: %d free, %d new running, %d waiting", h.free, h.newRunning, h.waiting())
	}
}
