package transfer

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/idempotency"
	"github.com/paygate/paygate/internal/platform/postgres"
)

var errCrash = errors.New("crash before the commit")

// batchItems makes the items of a batch: reqs[i] of callers[i], under
// keys[i].
func batchItems(ctx context.Context, s *Service, callers []authn.Principal, keys []string, reqs []CreateRequest) ([]item, error) {
	items := make([]item, len(reqs))
	for i, in := range reqs {
		req, err := s.Validate(in)
		if err != nil {
			return nil, err
		}
		items[i] = item{ctx: ctx, caller: callers[i], req: req, claim: idempotency.Claim{Owner: callers[i].UserID, Key: keys[i],
			Fingerprint: []byte(keys[i]), Status: http.StatusCreated,
			Refusal: func(err error) (int, []byte) { return http.StatusUnprocessableEntity, []byte(`{}`) }}}
	}
	return items, nil
}

// BookThenCrash books the transfers reqs[i] of callers[i], under keys[i],
// as one batch in a transaction that is then rolled back, as a crash
// before the commit would leave it. It returns how many the batch had
// booked before the crash.
func BookThenCrash(ctx context.Context, s *Service, callers []authn.Principal, keys []string, reqs []CreateRequest) (int, error) {
	items, err := batchItems(ctx, s, callers, keys, reqs)
	if err != nil {
		return 0, err
	}
	booked := 0
	err = s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		outs, err := s.bookIn(ctx, postgres.TxPipeline(tx), items)
		if err != nil {
			return err
		}
		for _, o := range outs {
			if o.err == nil && o.res.Status == http.StatusCreated {
				booked++
			}
		}
		return errCrash
	})
	if errors.Is(err, errCrash) {
		err = nil
	}
	return booked, err
}

// BookTracing books the transfers as one batch, as the committer does (in
// a pipelined transaction), over a connection of its own to dbURL that records every round trip to the
// server: a statement sent alone is its name (from its "-- name:" line, or
// its first word), a pipeline is "batch:" and its statements' names joined
// by commas.
func BookTracing(ctx context.Context, s *Service, dbURL string, callers []authn.Principal, keys []string, reqs []CreateRequest) (trips []string, booked int, err error) {
	items, err := batchItems(ctx, s, callers, keys, reqs)
	if err != nil {
		return nil, 0, err
	}
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return nil, 0, err
	}
	tr := &tripTracer{}
	cfg.Tracer = tr
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close(ctx)
	if err := postgres.RegisterTypes(ctx, conn); err != nil {
		return nil, 0, err
	}
	err = postgres.RunPipelined(ctx, conn, func(ctx context.Context, p postgres.Pipeline) error {
		outs, err := s.bookIn(ctx, p, items)
		for _, o := range outs {
			if o.err == nil && o.res.Status == http.StatusCreated {
				booked++
			}
		}
		return err
	})
	return tr.trips, booked, err
}

// tripTracer records round trips (see BookTracing).
type tripTracer struct {
	trips []string
	batch []string
}

func statementName(sql string) string {
	if _, rest, ok := strings.Cut(sql, "-- name: "); ok {
		return strings.Fields(rest)[0]
	}
	return strings.ToLower(strings.Fields(sql)[0])
}

func (t *tripTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	t.trips = append(t.trips, statementName(d.SQL))
	return ctx
}

func (t *tripTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (t *tripTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	t.batch = nil
	return ctx
}

func (t *tripTracer) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	t.batch = append(t.batch, statementName(d.SQL))
}

func (t *tripTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {
	t.trips = append(t.trips, "batch:"+strings.Join(t.batch, ","))
}

// ScheduleKeys are the committer's scheduling keys of a transfer of
// caller's to to.
func ScheduleKeys(s *Service, caller authn.Principal, to string) []string {
	return s.parties.keys(item{caller: caller, req: Request{To: to}})
}
