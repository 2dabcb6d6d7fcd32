package ledger

import (
	"math"
	"math/big"
	"testing"
)

func TestCheckedArithmeticAgreesWithBigInts(t *testing.T) {
	t.Parallel()
	vals := []int64{math.MinInt64, math.MinInt64 + 1, -1 << 62, -2, -1, 0, 1, 2, 1 << 62, math.MaxInt64 - 1, math.MaxInt64}
	fits := func(z *big.Int) bool { return z.IsInt64() }
	for _, a := range vals {
		for _, b := range vals {
			s, ok := add64(a, b)
			want := new(big.Int).Add(big.NewInt(a), big.NewInt(b))
			if ok != fits(want) || (ok && s != want.Int64()) {
				t.Errorf("add64(%d, %d) = %d, %v; want %s", a, b, s, ok, want)
			}
			d, ok := sub64(a, b)
			want = new(big.Int).Sub(big.NewInt(a), big.NewInt(b))
			if ok != fits(want) || (ok && d != want.Int64()) {
				t.Errorf("sub64(%d, %d) = %d, %v; want %s", a, b, d, ok, want)
			}
		}
	}
}
