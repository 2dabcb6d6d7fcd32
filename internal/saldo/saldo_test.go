package saldo_test

import (
	"net/http"
	"testing"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/saldo"
)

// TestSaldoEndpointsShowOnlyWhatTheCallerMaySee: a user reads their own
// saldo and statement, and another user's saldo answers 404 like an
// unknown or malformed id; only an administrator lists every wallet
// (paginated) and reads anyone's saldo.
func TestSaldoEndpointsShowOnlyWhatTheCallerMaySee(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	ann, bob := e.NewUser(t), e.NewUser(t)
	for _, amount := range []int64{150000, 20000, 30000} {
		e.Fund(t, ann, amount)
	}
	var own saldo.Saldo
	e.Get(t, "/v1/saldo", ann.Token).JSON(t, &own)
	if own.Balance != 200000 || own.Available != 200000 || own.AccountNumber != ann.AccountNumber {
		t.Fatalf("own saldo: %+v", own)
	}
	var page struct {
		Data       []saldo.StatementEntry `json:"data"`
		NextCursor *string                `json:"next_cursor"`
	}
	e.Get(t, "/v1/saldo/statement?limit=2", ann.Token).JSON(t, &page)
	if len(page.Data) != 2 || page.NextCursor == nil || page.Data[0].BalanceAfter != 200000 {
		t.Fatalf("statement page 1: %+v", page)
	}
	e.Get(t, "/v1/saldo/statement?limit=2&cursor="+*page.NextCursor, ann.Token).JSON(t, &page)
	if len(page.Data) != 1 || page.NextCursor != nil || page.Data[0].BalanceAfter != 150000 {
		t.Fatalf("statement page 2: %+v", page)
	}
	if r := e.Get(t, "/v1/saldo/statement?cursor=bogus", ann.Token); r.Status != http.StatusBadRequest || r.Code() != "INVALID_CURSOR" {
		t.Fatalf("foreign cursor: %d %s", r.Status, r.Body)
	}

	var self saldo.Saldo
	if r := e.Get(t, "/v1/users/"+ann.ID+"/saldo", ann.Token); r.Status != http.StatusOK {
		t.Fatalf("own saldo by id: %d %s", r.Status, r.Body)
	} else if r.JSON(t, &self); self != own {
		t.Fatalf("own saldo by id %+v, want %+v", self, own)
	}
	for _, path := range []string{"/v1/users/" + ann.ID + "/saldo", "/v1/users/not-a-uuid/saldo"} {
		if r := e.Get(t, path, bob.Token); r.Status != http.StatusNotFound || r.Code() != "NOT_FOUND" {
			t.Fatalf("bob reading %s: %d %s", path, r.Status, r.Body)
		}
	}
	for _, path := range []string{"/v1/saldos", "/v1/admin/ledger/verify"} {
		if r := e.Get(t, path, bob.Token); r.Status != http.StatusForbidden || r.Code() != "FORBIDDEN" {
			t.Fatalf("a user reading %s: %d %s", path, r.Status, r.Body)
		}
	}

	admin := e.Admin(t)
	if r := e.Get(t, "/v1/users/"+ann.ID+"/saldo", admin.Token); r.Status != http.StatusOK {
		t.Fatalf("admin reading ann's saldo: %d %s", r.Status, r.Body)
	}
	seen := map[string]int64{}
	cursor := ""
	for pages := 0; ; pages++ {
		var all struct {
			Data       []saldo.Saldo `json:"data"`
			NextCursor *string       `json:"next_cursor"`
		}
		path := "/v1/saldos?limit=1"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		e.Get(t, path, admin.Token).JSON(t, &all)
		for _, s := range all.Data {
			seen[s.AccountNumber] = s.Balance
		}
		if all.NextCursor == nil || pages > 10 {
			break
		}
		cursor = *all.NextCursor
	}
	// The bootstrap administrator, ann and bob.
	if len(seen) != 3 || seen[ann.AccountNumber] != 200000 || seen[bob.AccountNumber] != 0 {
		t.Fatalf("every wallet, page by page: %v", seen)
	}
}
