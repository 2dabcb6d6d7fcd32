package notify

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// SetSMTPClock replaces the clock s uses to age its idle connections.
func SetSMTPClock(s *SMTPSender, now func() time.Time) { s.now = now }

// SMTPIdleTimeout and SMTPMaxMessagesPerConn expose the reuse limits.
const (
	SMTPIdleTimeout        = smtpIdleTimeout
	SMTPMaxMessagesPerConn = smtpMaxMessagesPerConn
)

// ClaimState is a claim outcome as a word, for tests.
func ClaimState(c claim) string {
	return map[claim]string{claimed: "claimed", alreadySent: "sent", busy: "busy"}[c]
}

// ClaimAllForTest claims the mails (recipient, template pairs) of eventID and
// returns each outcome as a word and, for a busy one, its claim's end.
func (s *Store) ClaimAllForTest(ctx context.Context, eventID uuid.UUID, mails [][2]string) ([]string, []time.Time, error) {
	keys := make([]mailKey, len(mails))
	for i, m := range mails {
		keys[i] = mailKey{event: eventID, recipient: m[0], template: m[1]}
	}
	res, err := s.ClaimAll(ctx, keys)
	states, untils := make([]string, len(res)), make([]time.Time, len(res))
	for i, r := range res {
		states[i], untils[i] = ClaimState(r.state), r.until
	}
	return states, untils, err
}

// MarkAllSentForTest records the mails of eventID as sent.
func (s *Store) MarkAllSentForTest(ctx context.Context, eventID uuid.UUID, mails [][2]string) error {
	keys := make([]mailKey, len(mails))
	for i, m := range mails {
		keys[i] = mailKey{event: eventID, recipient: m[0], template: m[1]}
	}
	return s.MarkAllSent(ctx, keys)
}

// TestWrite is a write of Store.Commit for tests: mails (recipient,
// template pairs) of Event to record as sent and to claim.
type TestWrite struct {
	Event        uuid.UUID
	Sent, Claims [][2]string
}

// CommitForTest commits writes together and returns each claim's outcome
// as a word.
func (s *Store) CommitForTest(ctx context.Context, writes []TestWrite) ([][]string, error) {
	ws := make([]write, len(writes))
	for i, w := range writes {
		for _, m := range w.Sent {
			ws[i].sent = append(ws[i].sent, mailKey{event: w.Event, recipient: m[0], template: m[1]})
		}
		for _, m := range w.Claims {
			ws[i].claims = append(ws[i].claims, mailKey{event: w.Event, recipient: m[0], template: m[1]})
		}
	}
	res, err := s.Commit(ctx, ws)
	out := make([][]string, len(res))
	for i, rs := range res {
		for _, r := range rs {
			out[i] = append(out[i], ClaimState(r.state))
		}
	}
	return out, err
}
