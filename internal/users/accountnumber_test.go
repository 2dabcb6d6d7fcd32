package users

import "testing"

func TestGeneratedAccountNumbersAreLuhnValidAndVaried(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	firstDigits := map[byte]bool{}
	for range 5000 {
		n, err := NewAccountNumber()
		if err != nil {
			t.Fatal(err)
		}
		if !ValidAccountNumber(n) {
			t.Fatalf("%s is not Luhn-valid", n)
		}
		if n[0] == '0' {
			t.Fatalf("%s starts with 0", n)
		}
		seen[n] = true
		firstDigits[n[0]] = true
	}
	if len(seen) < 4999 || len(firstDigits) != 9 {
		t.Fatalf("%d distinct numbers, %d first digits: the generator is not random", len(seen), len(firstDigits))
	}
}

func TestValidAccountNumber(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		n    string
		want bool
	}{
		{"4539578763621486", true}, // a known Luhn-valid number
		{"4539578763621487", false},
		{"4539578763621468", false}, // swapped neighbours
		{"453957876362148", false},  // too short
		{"453957876362148a", false},
		{"0000000000000000", true},
	} {
		if got := ValidAccountNumber(c.n); got != c.want {
			t.Errorf("ValidAccountNumber(%s) = %v, want %v", c.n, got, c.want)
		}
	}
}
