package users

import (
	"crypto/rand"
	"fmt"
	"math/big"
)

// AccountNumberLength is the number of digits of an account number.
const AccountNumberLength = 16

// NewAccountNumber draws a 16-digit account number from crypto/rand: a
// non-zero first digit, 14 uniformly random digits and a Luhn check digit,
// so that a mistyped digit or swapped neighbours are caught before money
// moves. Uniqueness is the database's job (a unique constraint, retried by
// the caller on collision).
func NewAccountNumber() (string, error) {
	digits := make([]byte, AccountNumberLength)
	first, err := rand.Int(rand.Reader, big.NewInt(9))
	if err != nil {
		return "", fmt.Errorf("account number: %w", err)
	}
	digits[0] = byte('1' + first.Int64())
	body, err := rand.Int(rand.Reader, big.NewInt(1e14))
	if err != nil {
		return "", fmt.Errorf("account number: %w", err)
	}
	copy(digits[1:], fmt.Sprintf("%014d", body.Int64()))
	digits[AccountNumberLength-1] = luhnCheckDigit(digits[:AccountNumberLength-1])
	return string(digits), nil
}

// luhnCheckDigit returns the digit that makes payload+digit Luhn-valid.
func luhnCheckDigit(payload []byte) byte {
	sum := 0
	// Walking from the right, the digit next to the check digit is doubled.
	for i := len(payload) - 1; i >= 0; i-- {
		d := int(payload[i] - '0')
		if (len(payload)-1-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10)
}

// ValidAccountNumber reports whether s is 16 digits with a valid Luhn check.
func ValidAccountNumber(s string) bool {
	if len(s) != AccountNumberLength {
		return false
	}
	sum := 0
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if (len(s)-1-i)%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}
