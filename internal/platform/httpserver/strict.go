package httpserver

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/paygate/paygate/internal/platform/apperr"
)

// maxNesting is the deepest nesting of objects and arrays a request body
// may have. No request is deeper than two levels; the bound keeps a body of
// a million '[' from costing a million stack frames.
const maxNesting = 32

// checkStrict refuses a body whose meaning would depend on how a parser
// breaks ties, before encoding/json decodes it into a value of type t.
// encoding/json keeps the last of duplicate members, matches member names
// to fields case-insensitively (so "AMOUNT" and "amount" both set Amount),
// and replaces invalid UTF-8 and lone surrogates with U+FFFD; another
// parser (a proxy, an audit log, the client's own) may do otherwise. So
// the body must be valid UTF-8 with no lone surrogate escape, and hold
// exactly one JSON value; no object may repeat a member; every member of
// an object decoded into a struct must name a field exactly; and every
// number must fit the field it sets; null is refused where a field cannot
// hold it, and U+0000 in any string. A problem with a member is a
// VALIDATION_FAILED naming it (as a path: "payment.method", "items[2]");
// a body that is not one JSON value is MALFORMED_JSON.
func checkStrict(raw []byte, t reflect.Type) error {
	if !utf8.Valid(raw) {
		return apperr.ErrMalformedJSON.With("The request body is not valid UTF-8.")
	}
	if hasLoneSurrogate(raw) {
		return apperr.ErrMalformedJSON.With("The request body has a \\u escape of a lone UTF-16 surrogate.")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	w := walker{dec: dec}
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return apperr.ErrMalformedJSON.With("The request body is empty.")
		}
		return apperr.ErrMalformedJSON
	}
	if rt, _ := target(t); rt != nil && rt.Kind() == reflect.Struct && tok != json.Delim('{') {
		return errNotObject
	}
	if err := w.value(tok, t, "", 0); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apperr.ErrMalformedJSON.With("The request body must hold a single JSON object.")
	}
	return nil
}

// errNotObject refuses a body that is not an object where one is expected.
var errNotObject = apperr.Validation("The request body must be a JSON object.")

type walker struct {
	dec *json.Decoder
}

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// target resolves the type a value is decoded into: pointers are followed,
// and nil means "any value" (an interface, or a type with its own
// unmarshaling, whose members are still checked for duplicates).
func target(t reflect.Type) (reflect.Type, bool) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() == reflect.Interface {
		return nil, false
	}
	pt := reflect.PointerTo(t)
	custom := pt.Implements(jsonUnmarshalerType) || t.Implements(jsonUnmarshalerType)
	text := pt.Implements(textUnmarshalerType) || t.Implements(textUnmarshalerType)
	return t, custom || text
}

// value checks the value that starts with tok, decoded into t, at path.
func (w *walker) value(tok json.Token, t reflect.Type, path string, depth int) error {
	if tok == nil {
		return checkNull(t, path)
	}
	t, custom := target(t)
	if custom {
		t = nil
	}
	switch v := tok.(type) {
	case json.Delim:
		if depth >= maxNesting {
			return apperr.ErrMalformedJSON.With(fmt.Sprintf("The request body nests deeper than %d levels.", maxNesting))
		}
		if v == '{' {
			return w.object(t, path, depth+1)
		}
		return w.array(t, path, depth+1)
	case json.Number:
		return checkNumber(v, t, path)
	case string:
		// No text column can hold U+0000 (PostgreSQL refuses it), so a
		// string with one would fail as a fault deep in a transaction.
		if strings.ContainsRune(v, 0) {
			if path == "" {
				return errNotObject
			}
			return apperr.Validation("A string holds the NUL character.",
				apperr.FieldError{Field: path, Message: "must not contain the NUL character (U+0000)"})
		}
	}
	return nil
}

// checkNull refuses null for a field that cannot hold it: encoding/json
// leaves such a field as it was, so {"amount": null} would read as an
// amount of 0. Pointers, slices, maps and interfaces take null as absent.
func checkNull(t reflect.Type, path string) error {
	if t == nil || reflect.PointerTo(t).Implements(jsonUnmarshalerType) {
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return nil
	}
	if path == "" {
		return errNotObject
	}
	return apperr.Validation("A field is null.", apperr.FieldError{Field: path, Message: "must not be null"})
}

func (w *walker) next() (json.Token, error) {
	tok, err := w.dec.Token()
	if err != nil {
		return nil, apperr.ErrMalformedJSON
	}
	return tok, nil
}

func (w *walker) object(t reflect.Type, path string, depth int) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	switch {
	case t == nil:
	case t.Kind() == reflect.Struct:
		fields = structFields(t)
	case t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	seen := map[string]bool{}
	for {
		tok, err := w.next()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok && d == '}' {
			return nil
		}
		name, ok := tok.(string)
		if !ok {
			return apperr.ErrMalformedJSON
		}
		member := join(path, name)
		if seen[name] {
			return apperr.Validation("The request body has a member more than once.",
				apperr.FieldError{Field: member, Message: "appears more than once"})
		}
		seen[name] = true
		ft := elem
		if fields != nil {
			var known bool
			if ft, known = fields[name]; !known {
				return unknownMember(fields, member, name)
			}
		}
		if tok, err = w.next(); err != nil {
			return err
		}
		if err := w.value(tok, ft, member, depth); err != nil {
			return err
		}
	}
}

// unknownMember is the error of a member no field is named exactly.
func unknownMember(fields map[string]reflect.Type, member, name string) error {
	for f := range fields {
		if strings.EqualFold(f, name) {
			return apperr.Validation("The request has a member whose name differs from a field's only by case.",
				apperr.FieldError{Field: member, Message: fmt.Sprintf("is not an accepted field (member names are case-sensitive: did you mean %q?)", f)})
		}
	}
	return apperr.Validation("The request has a field that is not accepted.",
		apperr.FieldError{Field: member, Message: "is not an accepted field"})
}

func (w *walker) array(t reflect.Type, path string, depth int) error {
	var elem reflect.Type
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		elem = t.Elem()
	}
	for i := 0; ; i++ {
		tok, err := w.next()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok && d == ']' {
			return nil
		}
		if err := w.value(tok, elem, fmt.Sprintf("%s[%d]", path, i), depth); err != nil {
			return err
		}
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// checkNumber refuses a number that does not fit the field it sets: a
// fraction, an exponent or a value out of range for an integer field, and
// a value out of float64's range anywhere (encoding/json would decode it
// as ±Inf into an interface, or refuse it only after a partial decode).
func checkNumber(n json.Number, t reflect.Type, path string) error {
	s := n.String()
	var (
		err error
		msg string
	)
	kind := reflect.Invalid
	if t != nil {
		kind = t.Kind()
	}
	switch kind {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		_, err = strconv.ParseInt(s, 10, t.Bits())
		hi := int64(math.MaxInt64 >> (64 - t.Bits()))
		msg = fmt.Sprintf("must be an integer from %d to %d", -hi-1, hi)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		_, err = strconv.ParseUint(s, 10, t.Bits())
		msg = fmt.Sprintf("must be an integer from 0 to %d", uint64(math.MaxUint64>>(64-t.Bits())))
	case reflect.Float32:
		_, err = strconv.ParseFloat(s, 32)
		msg = "must be a number within float32's range"
	default:
		_, err = strconv.ParseFloat(s, 64)
		msg = "must be a number within float64's range"
	}
	if err != nil {
		if path == "" {
			return errNotObject
		}
		return apperr.Validation("A number is out of range.", apperr.FieldError{Field: path, Message: msg})
	}
	return nil
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// structFields returns the JSON member names of struct t, exactly as
// encoding/json names them (the tag's name, else the Go field name), with
// the type each decodes into. Fields of embedded structs without a tag
// name are promoted, a shallower field hiding a deeper one.
func structFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	out := map[string]reflect.Type{}
	depthOf := map[string]int{}
	var walk func(t reflect.Type, depth int)
	walk = func(t reflect.Type, depth int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := f.Type
			if f.Anonymous && name == "" {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					walk(et, depth+1)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if d, ok := depthOf[name]; ok && d <= depth {
				continue
			}
			out[name], depthOf[name] = ft, depth
		}
	}
	walk(t, 0)
	fieldCache.Store(t, out)
	return out
}

// hasLoneSurrogate reports whether a string in raw has a \u escape of a
// UTF-16 surrogate that is not part of a high-low pair; encoding/json
// decodes one as U+FFFD, where a stricter parser refuses the body.
func hasLoneSurrogate(raw []byte) bool {
	if !bytes.Contains(raw, []byte(`\u`)) {
		return false
	}
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 >= len(raw) {
				return false
			}
			if raw[i+1] != 'u' {
				i++
				continue
			}
			r, ok := hex4(raw, i+2)
			if !ok {
				return false // a syntax error the decoder reports
			}
			i += 5
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				return true
			case r >= 0xD800 && r <= 0xDBFF:
				if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					if lo, ok := hex4(raw, i+3); ok && lo >= 0xDC00 && lo <= 0xDFFF {
						i += 6
						continue
					}
				}
				return true
			}
		}
	}
	return false
}

func hex4(raw []byte, at int) (rune, bool) {
	if at+4 > len(raw) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(raw[at:at+4]), 16, 32)
	return rune(v), err == nil
}
