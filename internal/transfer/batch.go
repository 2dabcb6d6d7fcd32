package transfer

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/events"
	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/idempotency"
	"github.com/paygate/paygate/internal/platform/outbox"
	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/users"
)

// item is one transfer request in a batch: validated, with its caller and
// its Idempotency-Key claim.
type item struct {
	// ctx is the request's: its trace continues in the item's event.
	ctx    context.Context
	claim  idempotency.Claim
	caller authn.Principal
	req    Request
}

// outcome is what became of an item: the response to store and answer,
// or an error that stores nothing (a fault of ours; the client retries).
type outcome struct {
	res idempotency.Response
	// result is the metric label of a fresh booking; "" for a replay.
	result string
	amount int64
	err    error
}

// bookBatch books a batch of transfers in one transaction, with a fixed
// number of statements and round trips whatever the batch's size (see
// bookIn). Each item is decided on its own: a replay answers its
// stored response, a refused transfer (insufficient funds, an unknown or
// inactive recipient, a transfer to oneself) stores and answers its
// refusal and writes nothing else, and the others are booked.
//
// If the transaction fails as a whole (a database fault), the batch is
// tried again item by item, each in its own transaction, so that an item
// that made it fail fails alone. That is safe even when the failure came
// after the COMMIT (a result of the committing pipeline that could not be
// read): each item's key was stored with its booking, so its retry
// replays the stored response and nothing is booked twice.
func (s *Service) bookBatch(ctx context.Context, items []item) []outcome {
	var out []outcome
	err := s.db.InPipelinedTx(ctx, func(ctx context.Context, p postgres.Pipeline) error {
		var err error
		out, err = s.bookIn(ctx, p, items)
		return err
	})
	if err == nil {
		if s.relay != nil {
			// Its events are committed (a batch of replays and refusals
			// has none, and the relay then finds nothing: a wake-up is
			// one channel send, coalesced with any already pending).
			s.relay.Wake()
		}
		return out
	}
	if len(items) == 1 {
		return []outcome{{err: err}}
	}
	out = make([]outcome, len(items))
	for i := range items {
		out[i] = s.bookBatch(ctx, items[i:i+1])[0]
	}
	return out
}

// bookIn is bookBatch's transaction, in three round trips, BEGIN and
// COMMIT included:
//
//  1. BEGIN, the keys' locks, and every party found and share-locked: the
//     senders, and the recipients named by id, account number or email;
//  2. the stored responses of the locked keys, and the parties' wallets
//     locked (this batch's accounts are locked from here to the commit);
//  3. every write, once the batch is decided in memory, and COMMIT.
//
// Replays and refusals are decided between 2 and 3; a replay's parties
// were locked for nothing, which costs less than a round trip.
func (s *Service) bookIn(ctx context.Context, tx postgres.Pipeline, items []item) ([]outcome, error) {
	out := make([]outcome, len(items))
	claims := make([]idempotency.Claim, len(items))
	var ids []uuid.UUID
	var numbers, emails []string
	for i, it := range items {
		claims[i] = it.claim
		ids = append(ids, it.caller.UserID)
		to := it.req.To
		switch {
		case digits16.MatchString(to):
			numbers = append(numbers, to)
		case strings.Contains(to, "@"):
			emails = append(emails, to)
		default:
			if id, err := uuid.Parse(to); err == nil {
				ids = append(ids, id)
			}
		}
	}
	b := &pgx.Batch{}
	claim := s.keys.QueueClaimMany(b, claims)
	locked := map[uuid.UUID]users.User{}
	s.users.QueueLockNamed(b, ids, numbers, emails, locked)
	if err := tx.Send(ctx, b); err != nil {
		return nil, fmt.Errorf("transfer: claim keys and lock parties: %w", err)
	}

	b = &pgx.Batch{}
	claim.QueueLookup(b)
	owners := slices.Collect(maps.Keys(locked))
	wallets := s.ledger.QueueLockWallets(b, owners)
	if err := tx.Send(ctx, b); err != nil {
		return nil, fmt.Errorf("transfer: read keys and lock wallets: %w", err)
	}

	var fresh []int
	for i, st := range claim.States() {
		switch {
		case st.Busy:
			out[i].err = idempotency.ErrInProgress
		case st.Reused:
			out[i].err = idempotency.ErrKeyReused
		case st.Stored != nil:
			out[i].res = *st.Stored
		default:
			fresh = append(fresh, i)
		}
	}
	if len(fresh) == 0 {
		return out, nil
	}

	s.parties.learn(locked)
	byNumber, byEmail := map[string]uuid.UUID{}, map[string]uuid.UUID{}
	for _, u := range locked {
		byNumber[u.AccountNumber], byEmail[u.Email] = u.ID, u.ID
	}
	rcpt := make(map[int]uuid.UUID, len(fresh))
	for _, i := range fresh {
		to := items[i].req.To
		var id uuid.UUID
		var ok bool
		switch {
		case digits16.MatchString(to):
			id, ok = byNumber[to]
		case strings.Contains(to, "@"):
			id, ok = byEmail[users.NormalizeEmail(to)]
		default:
			if pid, err := uuid.Parse(to); err == nil {
				_, ok = locked[pid]
				id = pid
			}
		}
		if ok {
			rcpt[i] = id
		}
	}

	// The ledger transactions of the transfers the parties allow.
	var booking []int
	var txs []ledger.Transaction
	transfers := make(map[int]Transfer, len(fresh))
	for _, i := range fresh {
		it := items[i]
		sender, okS := locked[it.caller.UserID]
		r, okR := locked[rcpt[i]]
		var refusal error
		switch {
		case rcpt[i] == uuid.Nil || !okR || !r.Active:
			refusal = ErrRecipientNotFound
		case r.ID == it.caller.UserID:
			refusal = ErrSelfTransfer
		case !okS:
			refusal = users.ErrNotFound
		case !sender.Active:
			refusal = users.ErrInactive
		}
		from, okF := wallets.Wallet(sender.ID)
		to, okT := wallets.Wallet(r.ID)
		if refusal == nil && (!okF || !okT) {
			refusal = ledger.ErrAccountNotFound
		}
		if refusal != nil {
			out[i].err = refusal
			continue
		}
		id := uuid.New()
		transfers[i] = Transfer{ID: id, Amount: it.req.Amount, Currency: s.cfg.Currency, FromAccountNumber: sender.AccountNumber,
			ToAccountNumber: r.AccountNumber, Note: it.req.Note, Status: StatusSucceeded, Direction: "sent",
			fromUserID: sender.ID, toUserID: r.ID}
		booking = append(booking, i)
		txs = append(txs, ledger.Transaction{Kind: ledger.KindTransfer, Reference: id.String(), Currency: s.cfg.Currency,
			Postings: []ledger.Posting{{AccountID: from, Amount: -it.req.Amount}, {AccountID: to, Amount: it.req.Amount}}})
	}
	// The batch holds its accounts' row locks until the commit, and every
	// other batch touching one of them waits: everything the batch writes
	// goes in one pipelined round trip.
	plan, refused, err := s.ledger.PlanLocked(wallets, txs)
	if err != nil {
		return nil, err
	}
	posted := plan.Posted

	var booked []int
	var records []Transfer
	var ledgerTxs []uuid.UUID
	for k, i := range booking {
		if refused[k] != nil {
			out[i].err = refused[k]
			continue
		}
		t := transfers[i]
		t.CreatedAt = plan.At
		transfers[i] = t
		booked = append(booked, i)
		records = append(records, t)
		ledgerTxs = append(ledgerTxs, posted[k].ID)
	}
	b = &pgx.Batch{}
	plan.Queue(b)
	s.store.QueueInsertMany(b, records, ledgerTxs, plan.At)
	evs := make([]outbox.Event, len(booked))
	postedOf := make(map[int]ledger.PostedTransaction, len(booked))
	for k, i := range booking {
		postedOf[i] = posted[k]
	}
	walletOf := func(owner uuid.UUID) uuid.UUID { id, _ := wallets.Wallet(owner); return id }
	for k, i := range booked {
		t := transfers[i]
		p := postedOf[i]
		sender, r := locked[t.fromUserID], locked[t.toUserID]
		evs[k] = outbox.Event{Origin: items[i].ctx, Topic: s.topic, Key: sender.ID.String(), Type: events.TypeTransferSucceeded, Subject: "transfers/" + t.ID.String(),
			Data: events.TransferSucceeded{TransferID: t.ID, Amount: t.Amount, Currency: t.Currency, Note: t.Note, CreatedAt: t.CreatedAt,
				Sender:    party(sender, movement.BalanceAfter(p, walletOf(sender.ID))),
				Recipient: party(r, movement.BalanceAfter(p, walletOf(r.ID)))}}
	}
	if len(evs) > 0 {
		if _, err := outbox.QueueMany(ctx, b, evs); err != nil {
			return nil, err
		}
		if s.relay == nil {
			outbox.QueueNotify(b)
		}
	}

	// The responses of every fresh item, stored under their keys: the
	// booked ones' 201s and the refusals, as Stripe stores refusals. An
	// error that is no refusal (a fault of ours) stores nothing.
	var stored []idempotency.Stored
	for _, i := range fresh {
		it := items[i]
		o := &out[i]
		if o.err == nil {
			body, err := json.Marshal(transfers[i])
			if err != nil {
				return nil, fmt.Errorf("transfer: encode response: %w", err)
			}
			o.res = idempotency.Response{Status: it.claim.Status, Body: body}
			o.result, o.amount = movement.Result(nil), it.req.Amount
		} else {
			if !idempotency.Storable(o.err) {
				continue
			}
			o.result = movement.Result(o.err)
			o.res.Status, o.res.Body = it.claim.Refusal(o.err)
			o.err = nil
		}
		stored = append(stored, idempotency.Stored{Claim: it.claim, Status: o.res.Status, Body: o.res.Body})
	}
	s.keys.QueueStoreMany(b, stored)
	if err := tx.SendAndCommit(ctx, b); err != nil {
		return nil, fmt.Errorf("transfer: book batch: %w", err)
	}
	return out, nil
}
