package notify

import (
	"strconv"
	"strings"

	"github.com/paygate/paygate/internal/events"
)

// minorDigits is the number of minor-unit digits paygate uses per
// currency. Amounts are integers in minor units; the rupiah is handled
// without a fractional part (1 minor unit = Rp1), as it is in practice.
var minorDigits = map[string]int{
	"IDR": 0, "JPY": 0, "KRW": 0, "VND": 0,
	"USD": 2, "EUR": 2, "SGD": 2, "MYR": 2, "AUD": 2, "GBP": 2,
}

// FormatAmount renders an amount in minor units for a person, the
// Indonesian way: the ISO code, a space, "." between thousands and "," before
// the minor digits: FormatAmount(150000, "IDR") is "IDR 150.000",
// FormatAmount(123456, "USD") is "USD 1.234,56". Integer arithmetic only;
// unknown currencies get two minor digits.
func FormatAmount(minor int64, currency string) string {
	currency = strings.ToUpper(strings.TrimSpace(currency))
	digits, ok := minorDigits[currency]
	if !ok {
		digits = 2
	}
	neg := minor < 0
	// uint64 holds the magnitude of math.MinInt64 too.
	mag := uint64(minor)
	if neg {
		mag = -mag
	}
	scale := uint64(1)
	for range digits {
		scale *= 10
	}
	whole, frac := mag/scale, mag%scale

	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	if currency != "" {
		b.WriteString(currency)
		b.WriteByte(' ')
	}
	s := strconv.FormatUint(whole, 10)
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteRune(r)
	}
	if digits > 0 {
		f := strconv.FormatUint(frac, 10)
		b.WriteByte(',')
		b.WriteString(strings.Repeat("0", digits-len(f)))
		b.WriteString(f)
	}
	return b.String()
}

// maskAccount shows only the last four characters of an account number,
// "****1234": enough for its owner to recognise it, useless to anyone else.
func maskAccount(n string) string {
	return "****" + events.Last4(strings.TrimSpace(n))
}
