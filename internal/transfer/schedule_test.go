package transfer_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/platform/authn"
	transferpkg "github.com/paygate/paygate/internal/transfer"
)

// TestTransfersTouchingAWalletShareAKeyWhateverNamesIt: the committer
// holds a transfer back from a batch when a batch in flight touches one of
// its wallets, which it tells by the transfers' keys. A recipient named by
// account number or email gets the same key as that user as a sender or
// named by id, once a batch has found the user (before, the name itself).
func TestTransfersTouchingAWalletShareAKeyWhateverNamesIt(t *testing.T) {
	t.Parallel()
	var svc *transferpkg.Service
	e := apptest.Start(t, apptest.WithFx(fx.Populate(&svc)))
	alice, bob, carol := e.NewUser(t), e.NewUser(t), e.NewUser(t)
	principal := func(u apptest.User) authn.Principal {
		return authn.Principal{UserID: uuid.MustParse(u.ID), Role: authn.RoleUser}
	}
	if got := transferpkg.ScheduleKeys(svc, principal(carol), bob.AccountNumber); !slices.Equal(got, []string{carol.ID, bob.AccountNumber}) {
		t.Fatalf("keys before bob was found: %q, want carol's id and the number as given", got)
	}

	fund(t, e, alice, 20000)
	if r := e.Post(t, "/v1/transfers", alice.Token, map[string]any{"to": bob.AccountNumber, "amount": 10000},
		"Idempotency-Key", "schedule-1"); r.Status != http.StatusCreated {
		t.Fatalf("transfer: %d %s", r.Status, r.Body)
	}

	byNumber := transferpkg.ScheduleKeys(svc, principal(carol), bob.AccountNumber)
	byEmail := transferpkg.ScheduleKeys(svc, principal(carol), " "+strings.ToUpper(bob.Email))
	byID := transferpkg.ScheduleKeys(svc, principal(carol), bob.ID)
	for _, got := range [][]string{byNumber, byEmail, byID} {
		if !slices.Equal(got, []string{carol.ID, bob.ID}) {
			t.Fatalf("keys of carol → bob: %q, want both user ids", got)
		}
	}
	if fromBob := transferpkg.ScheduleKeys(svc, principal(bob), carol.ID); fromBob[0] != bob.ID {
		t.Fatalf("keys of bob → carol: %q, want bob's id first", fromBob)
	}
}
