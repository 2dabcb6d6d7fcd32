package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap/zaptest"

	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/platform/pgtest"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// TestConcurrentTransfersConserveMoney runs 2,000 random transfers between
// 8 funded wallets from 16 goroutines, many of them in opposite directions
// on one hot pair of wallets and some splitting one debit over two
// recipients, through postgres.DB.InTx. With accounts locked in id order
// no transfer may ever hit a deadlock (nor, under READ COMMITTED, a
// serialization failure); afterwards the ledger must verify, no wallet may
// be negative, every wallet must hold exactly its opening balance plus the
// successful transfers, and each successful transfer must be booked once
// and each refused one not at all.
func TestConcurrentTransfersConserveMoney(t *testing.T) {
	t.Parallel()
	const (
		wallets   = 8
		workers   = 16
		transfers = 2000
		opening   = 10_000
	)
	f := newFixtureURL(t, pgtest.NewDatabase(t)+"&pool_max_conns=20")
	db := postgres.NewDB(f.pool, 10, zaptest.NewLogger(t))
	ids := make([]uuid.UUID, wallets)
	for i := range ids {
		ids[i] = f.wallet(opening).ID
	}

	var (
		next      atomic.Int64
		retryable atomic.Int64
		mu        sync.Mutex
		succeeded = map[string][]ledger.Posting{}
		refused   []string
	)
	// The first deadlock or serialization failure stops every worker, so
	// that wrong locking fails the test at once instead of crawling
	// through deadlock_timeout waits and retries.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for {
				n := next.Add(1)
				if n > transfers || ctx.Err() != nil {
					return
				}
				ref := fmt.Sprintf("transfer-%d", n)
				var postings []ledger.Posting
				amount := rng.Int64N(3000) + 1
				switch r := rng.IntN(10); {
				case r < 5: // the hot pair, either direction
					from, to := ids[0], ids[1]
					if rng.IntN(2) == 0 {
						from, to = to, from
					}
					postings = []ledger.Posting{{from, -amount}, {to, amount}}
				case r < 6: // one debit, two credits
					p := rng.Perm(wallets)
					postings = []ledger.Posting{{ids[p[0]], -2 * amount}, {ids[p[1]], amount}, {ids[p[2]], amount}}
				default:
					p := rng.Perm(wallets)
					postings = []ledger.Posting{{ids[p[0]], -amount}, {ids[p[1]], amount}}
				}
				err := db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
					_, err := f.store.Post(ctx, tx, ledger.Transaction{Kind: ledger.KindTransfer, Reference: ref, Postings: postings})
					if postgres.Retryable(err) {
						retryable.Add(1)
						stop()
					}
					return err
				})
				if retryable.Load() > 0 {
					return
				}
				mu.Lock()
				switch {
				case err == nil:
					succeeded[ref] = postings
				case errors.Is(err, ledger.ErrInsufficientFunds):
					refused = append(refused, ref)
				default:
					mu.Unlock()
					t.Errorf("%s: %v", ref, err)
					return
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if n := retryable.Load(); n != 0 {
		t.Fatalf("%d deadlock(s) or serialization failure(s): accounts are not locked in one order", n)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d transfers booked, %d refused for insufficient funds, %d retryable errors",
		len(succeeded), len(refused), retryable.Load())
	if len(succeeded)+len(refused) != transfers {
		t.Fatalf("%d outcomes, want %d", len(succeeded)+len(refused), transfers)
	}
	if len(succeeded) < transfers/2 {
		t.Fatalf("only %d transfers succeeded: the test does not exercise much", len(succeeded))
	}

	r := f.verifyOK()
	if want := int64(wallets + len(succeeded)); r.Transactions != want {
		t.Fatalf("%d ledger transactions, want %d", r.Transactions, want)
	}
	want := map[uuid.UUID]int64{}
	for _, id := range ids {
		want[id] = opening
	}
	for _, ps := range succeeded {
		for _, p := range ps {
			want[p.AccountID] += p.Amount
		}
	}
	var total int64
	for _, id := range ids {
		b := f.balances(id)
		if b.Balance < 0 || b.Available < 0 {
			t.Errorf("wallet %s is negative: %+v", id, b)
		}
		if b.Balance != want[id] {
			t.Errorf("wallet %s balance %d, want %d", id, b.Balance, want[id])
		}
		total += b.Balance
	}
	if total != wallets*opening {
		t.Errorf("wallets hold %d in total, want %d", total, wallets*opening)
	}
	f.wantBalances(f.funding.ID, -wallets*opening, 0)

	rows, err := f.pool.Query(f.ctx, `SELECT reference, count(*) FROM ledger_transactions WHERE kind = 'transfer' GROUP BY reference`)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct {
		ref string
		n   int64
	}, error) {
		var c struct {
			ref string
			n   int64
		}
		return c, r.Scan(&c.ref, &c.n)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != len(succeeded) {
		t.Fatalf("%d transfer references booked, want %d", len(counts), len(succeeded))
	}
	for _, c := range counts {
		if _, ok := succeeded[c.ref]; !ok || c.n != 1 {
			t.Fatalf("reference %s booked %d times (succeeded: %v)", c.ref, c.n, ok)
		}
	}
}

func BenchmarkPostTransfer(b *testing.B) {
	f := newFixture(b)
	from, to := f.wallet(1<<40).ID, f.wallet(1<<40).ID
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		err := f.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			_, err := f.store.Post(ctx, tx, ledger.Transaction{Kind: ledger.KindTransfer, Reference: "bench",
				Postings: []ledger.Posting{{from, -1}, {to, 1}}})
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		from, to = to, from
	}
}
