package transfer

import (
	"context"
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/idempotency"
)

var errCrash = errors.New("crash before the commit")

// BookThenCrash books the transfers reqs[i] of callers[i], under keys[i],
// as one batch in a transaction that is then rolled back, as a crash
// before the commit would leave it. It returns how many the batch had
// booked before the crash.
func BookThenCrash(ctx context.Context, s *Service, callers []authn.Principal, keys []string, reqs []CreateRequest) (int, error) {
	items := make([]item, len(reqs))
	for i, in := range reqs {
		req, err := s.Validate(in)
		if err != nil {
			return 0, err
		}
		items[i] = item{ctx: ctx, caller: callers[i], req: req, claim: idempotency.Claim{Owner: callers[i].UserID, Key: keys[i],
			Fingerprint: []byte(keys[i]), Status: http.StatusCreated,
			Refusal: func(err error) (int, []byte) { return http.StatusUnprocessableEntity, []byte(`{}`) }}}
	}
	booked := 0
	err := s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		outs, err := s.bookIn(ctx, tx, items)
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
