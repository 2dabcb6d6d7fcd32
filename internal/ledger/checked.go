package ledger

// add64 returns a+b and whether it did not overflow.
func add64(a, b int64) (int64, bool) {
	s := a + b
	// Overflow happened iff a and b have the same sign and s has the other.
	return s, (a >= 0) != (b >= 0) || (s >= 0) == (a >= 0)
}

// sub64 returns a-b and whether it did not overflow.
func sub64(a, b int64) (int64, bool) {
	d := a - b
	// Overflow happened iff a and b have different signs and d's sign
	// differs from a's.
	return d, (a >= 0) == (b >= 0) || (d >= 0) == (a >= 0)
}
