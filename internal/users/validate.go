package users

import (
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/paygate/paygate/internal/platform/apperr"
)

// ValidateName checks a first or last name: 1 to 100 characters after
// trimming, no control characters. It returns the trimmed name.
func ValidateName(field, v string) (string, *apperr.FieldError) {
	v = strings.TrimSpace(v)
	n := utf8.RuneCountInString(v)
	if n < 1 || n > 100 {
		return v, &apperr.FieldError{Field: field, Message: "must be 1 to 100 characters"}
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return v, &apperr.FieldError{Field: field, Message: "must not contain control characters"}
		}
	}
	return v, nil
}

// ValidateEmail checks and normalises (trims, lower-cases) an email
// address: a bare addr-spec of at most 254 characters.
func ValidateEmail(v string) (string, *apperr.FieldError) {
	v = NormalizeEmail(v)
	a, err := mail.ParseAddress(v)
	if err != nil || a.Address != v || len(v) > 254 || !strings.Contains(v[strings.LastIndexByte(v, '@')+1:], ".") {
		return v, &apperr.FieldError{Field: "email", Message: "must be a valid email address"}
	}
	return v, nil
}
