package topup

import "strings"

// Methods are the 21 top-up methods paygate accepts, in their canonical
// lower-case spelling. Matching is case-insensitive.
var Methods = []string{
	"alfamart", "indomart", "lawson", "dana", "ovo", "gopay", "linkaja", "jenius", "fastpay", "kudo",
	"bri", "mandiri", "bca", "bni", "bukopin", "e-banking", "visa", "mastercard", "discover",
	"american express", "paypal",
}

var methodSet = func() map[string]bool {
	m := make(map[string]bool, len(Methods))
	for _, v := range Methods {
		m[v] = true
	}
	return m
}()

// CanonicalMethod returns the canonical spelling of a method name given in
// any case, and whether it is one of Methods.
func CanonicalMethod(s string) (string, bool) {
	c := strings.ToLower(strings.TrimSpace(s))
	return c, methodSet[c]
}
