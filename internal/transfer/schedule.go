package transfer

import (
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/users"
)

// maxParties bounds the recipients a service remembers for scheduling:
// when full, it forgets them all and learns again (a name it does not
// know only schedules less well).
const maxParties = 1 << 16

// parties remembers which user an account number or email named when a
// batch last locked them, so that the committer can tell two transfers
// that touch the same wallet apart from two that do not before either is
// booked. It is only a hint to scheduling: the batch still finds and
// locks every party itself, so a stale entry (an email changed since) costs
// at worst a lock wait, never a wrong booking.
type parties struct {
	mu    sync.RWMutex
	names map[string]uuid.UUID
}

// learn remembers the account numbers and emails of us.
func (p *parties) learn(us map[uuid.UUID]users.User) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.names == nil || len(p.names)+2*len(us) > maxParties {
		p.names = make(map[string]uuid.UUID, 2*len(us))
	}
	for _, u := range us {
		p.names[u.AccountNumber] = u.ID
		p.names[u.Email] = u.ID
	}
}

// keys are the scheduling keys of a transfer: its sender's and its
// recipient's user ids (a wallet is its owner's), or the recipient's name
// as given when this service has not seen it yet.
func (p *parties) keys(it item) []string {
	to := it.req.To
	switch {
	case digits16.MatchString(to):
	case strings.Contains(to, "@"):
		to = users.NormalizeEmail(to)
	default:
		if id, err := uuid.Parse(to); err == nil {
			return []string{it.caller.UserID.String(), id.String()}
		}
	}
	p.mu.RLock()
	id, ok := p.names[to]
	p.mu.RUnlock()
	if ok {
		return []string{it.caller.UserID.String(), id.String()}
	}
	return []string{it.caller.UserID.String(), to}
}
