package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// HashParams are argon2id cost parameters.
type HashParams struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

const (
	saltLen = 16
	keyLen  = 32
)

// HashLimits bound the hashing capacity: Concurrency hashes run at once
// (0: the number of CPUs, at least 2), at most Queue requests wait for a
// slot, none longer than MaxWait (0: no limit but the request's context).
type HashLimits struct {
	Concurrency int
	Queue       int
	MaxWait     time.Duration
}

// Hasher hashes and verifies passwords with argon2id. Hashes are PHC
// strings ($argon2id$v=19$m=...,t=...,p=...$salt$hash) that carry their
// own salt and parameters, so costs can be raised later: a hash made with
// weaker parameters still verifies and is flagged for rehashing.
//
// Hashing is deliberately slow and memory-hungry, so it runs behind a
// bounded, fair queue: a fixed number of slots, and at most Queue requests
// waiting for one, each served in arrival order within its class. A
// request that finds the queue full, or waits longer than MaxWait, is shed
// with ErrBusy (503 with Retry-After) rather than queued without bound.
// There are two classes: verifications (logins, password checks) and
// hashes of new passwords (registrations, password changes). A freed slot
// goes to the first waiting verification before any new password, and new
// passwords may fill only half of the queue and run in only half of the
// slots (at least one), so a burst of registrations cannot starve logins:
// with two slots, one is always left for verifications.
type Hasher struct {
	params HashParams
	limits HashLimits
	// onShed, when set, is told of every shed request.
	onShed func(newPassword bool)
	// dummy is verified against when the email is unknown, so that an
	// unknown email costs the same time as a wrong password.
	dummy string

	mu sync.Mutex
	// free is the number of idle slots; newRunning counts the slots
	// hashing new passwords, at most maxNew.
	free, newRunning, maxNew int
	// verifies and news are the waiting requests of each class, oldest
	// first; a waiter's channel is closed when a slot is handed to it.
	verifies, news []chan struct{}
}

// NewHasher returns a hasher producing hashes with p, its capacity bounded
// by l.
func NewHasher(p HashParams, l HashLimits) (*Hasher, error) {
	if l.Concurrency <= 0 {
		l.Concurrency = max(2, runtime.GOMAXPROCS(0))
	}
	h := &Hasher{params: p, limits: l, free: l.Concurrency, maxNew: max(1, l.Concurrency/2)}
	d, err := h.Hash(context.Background(), "paygate-dummy-password")
	if err != nil {
		return nil, err
	}
	h.dummy = d
	// The hash just took Argon2id's whole memory cost (64 MiB by default),
	// which the Go runtime would keep mapped for minutes before
	// scavenging it. Hand it back now: a gateway that has only started
	// should not look, or be scheduled, as if it were hashing. (Each
	// concurrent hash takes it again while it runs; the hashing queue
	// bounds how many run at once.)
	debug.FreeOSMemory()
	return h, nil
}

// waiting returns the number of requests queued for a slot.
func (h *Hasher) waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.verifies) + len(h.news)
}

// Admit sheds a request at once, with ErrBusy, when the queue has no room
// for its class now: callers check it before doing work (a throttle's
// database round trip) that a full queue would waste. It reserves nothing;
// the hash itself may still be shed.
func (h *Hasher) Admit(newPassword bool) error {
	h.mu.Lock()
	full := !h.canStart(newPassword) && len(h.verifies)+len(h.news) >= h.room(newPassword)
	h.mu.Unlock()
	if full {
		return h.shed(newPassword)
	}
	return nil
}

// room is how many waiters a request of the class may find queued and
// still join the queue.
func (h *Hasher) room(newPassword bool) int {
	if newPassword {
		return h.limits.Queue / 2
	}
	return h.limits.Queue
}

// canStart reports whether a request of the class may take an idle slot
// now; h.mu is held. A newcomer never overtakes a waiter of its class,
// and a new password waits while verifications do.
func (h *Hasher) canStart(newPassword bool) bool {
	if h.free == 0 || len(h.verifies) > 0 {
		return false
	}
	return !newPassword || (len(h.news) == 0 && h.newRunning < h.maxNew)
}

// start takes an idle slot for a request of the class; h.mu is held.
func (h *Hasher) start(newPassword bool) {
	h.free--
	if newPassword {
		h.newRunning++
	}
}

// acquire takes a hashing slot, waiting in the queue if there is room.
func (h *Hasher) acquire(ctx context.Context, newPassword bool) error {
	h.mu.Lock()
	if h.canStart(newPassword) {
		h.start(newPassword)
		h.mu.Unlock()
		return nil
	}
	if len(h.verifies)+len(h.news) >= h.room(newPassword) {
		h.mu.Unlock()
		return h.shed(newPassword)
	}
	ready := make(chan struct{})
	queue := &h.verifies
	if newPassword {
		queue = &h.news
	}
	*queue = append(*queue, ready)
	h.mu.Unlock()

	var timeout <-chan time.Time
	if h.limits.MaxWait > 0 {
		t := time.NewTimer(h.limits.MaxWait)
		defer t.Stop()
		timeout = t.C
	}
	var err error
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout:
		err = h.shed(newPassword)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if i := slices.Index(*queue, ready); i >= 0 {
		*queue = slices.Delete(*queue, i, i+1)
		return err
	}
	// The slot was handed over as the wait ended: pass it on.
	h.finish(newPassword)
	return err
}

// finish frees the slot of a request of the class and hands idle slots
// to waiters: the first waiting verifications, then the first waiting
// new passwords while they are below their share. h.mu is held.
func (h *Hasher) finish(newPassword bool) {
	h.free++
	if newPassword {
		h.newRunning--
	}
	for h.free > 0 && len(h.verifies) > 0 {
		h.start(false)
		close(h.verifies[0])
		h.verifies = h.verifies[1:]
	}
	for h.free > 0 && len(h.news) > 0 && h.newRunning < h.maxNew {
		h.start(true)
		close(h.news[0])
		h.news = h.news[1:]
	}
}

func (h *Hasher) release(newPassword bool) {
	h.mu.Lock()
	h.finish(newPassword)
	h.mu.Unlock()
}

func (h *Hasher) shed(newPassword bool) error {
	if h.onShed != nil {
		h.onShed(newPassword)
	}
	e := ErrBusy.With(ErrBusy.Detail)
	e.RetryAfter = max(h.limits.MaxWait, time.Second)
	return e
}

// Hash returns the PHC-encoded argon2id hash of password with a fresh salt.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	if err := h.acquire(ctx, true); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, h.params.Time, h.params.MemoryKiB, h.params.Threads, keyLen)
	h.release(true)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		h.params.MemoryKiB, h.params.Time, h.params.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("malformed password hash")

// Verify reports whether password matches encoded, and whether encoded was
// made with other parameters than the current ones and should be rehashed.
// The comparison is constant-time.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok, rehash bool, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, false, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, false, errBadHash
	}
	var p HashParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return false, false, errBadHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false, false, errBadHash
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, false, errBadHash
	}
	if err := h.acquire(ctx, false); err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	h.release(false)
	ok = subtle.ConstantTimeCompare(got, want) == 1
	return ok, ok && p != h.params, nil
}

// VerifyDummy spends the time of one verification and always fails. Its
// error is that of Verify: a shed or cancelled request.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	_, _, err := h.Verify(ctx, password, h.dummy)
	return err
}
