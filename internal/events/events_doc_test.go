package events_test

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/events"
)

// payloadTypes maps every event type of the contract to the Go type of
// its payload.
var payloadTypes = func() map[string]reflect.Type {
	out := make(map[string]reflect.Type, len(events.Catalog))
	for typ, payload := range events.Catalog {
		out[typ] = reflect.TypeOf(payload)
	}
	return out
}()

var eventTypePattern = regexp.MustCompile(`^paygate\.[a-z_]+\.[a-z_]+$`)

// eventConstants finds, in every non-test Go file under internal/, the
// string constants named Type* or Event* whose value looks like an event
// type: one declared outside this contract package is found too.
func eventConstants(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{} // value -> where
	root := filepath.Join("..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !(strings.HasPrefix(name.Name, "Type") || strings.HasPrefix(name.Name, "Event")) || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err == nil && eventTypePattern.MatchString(v) {
						out[v] = f.Name.Name + "." + name.Name + " (" + path + ")"
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type docSection struct {
	body    string
	example []byte
}

// docSections splits docs/events.md into its "### `type`" sections and
// takes the first json block of each.
func docSections(t *testing.T) map[string]docSection {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "events.md"))
	if err != nil {
		t.Fatal(err)
	}
	heading := regexp.MustCompile("(?m)^### `([^`]+)`\\s*$")
	anyHeading := regexp.MustCompile(`(?m)^#{1,3} `)
	jsonBlock := regexp.MustCompile("(?s)```json\n(.*?)\n```")
	out := map[string]docSection{}
	for _, loc := range heading.FindAllSubmatchIndex(raw, -1) {
		typ := string(raw[loc[2]:loc[3]])
		rest := raw[loc[1]:]
		if next := anyHeading.FindIndex(rest); next != nil {
			rest = rest[:next[0]]
		}
		s := docSection{body: string(rest)}
		if m := jsonBlock.FindSubmatch(rest); m != nil {
			s.example = m[1]
		}
		if _, dup := out[typ]; dup {
			t.Errorf("docs/events.md documents %s twice", typ)
		}
		out[typ] = s
	}
	return out
}

// TestEveryEventTypeIsDocumented: every event type constant in the code
// has a section in docs/events.md (with its topic, key, subject and when
// it is emitted) and a payload type here; the doc documents no type the
// code does not emit.
func TestEveryEventTypeIsDocumented(t *testing.T) {
	t.Parallel()
	consts := eventConstants(t)
	if len(consts) < 9 {
		t.Fatalf("found only %d event type constants: %v", len(consts), consts)
	}
	docs := docSections(t)
	for typ, where := range consts {
		s, ok := docs[typ]
		if !ok {
			t.Errorf("%s = %q is not documented in docs/events.md", where, typ)
			continue
		}
		if rt, ok := payloadTypes[typ]; ok && !strings.Contains(s.body, "| Go type | `events."+rt.Name()+"`") {
			t.Errorf("docs/events.md: %s's Go type row does not name events.%s", typ, rt.Name())
		}
		for _, row := range []string{"| Topic |", "| Key |", "| Subject |", "| Emitted |"} {
			if !strings.Contains(s.body, row) {
				t.Errorf("docs/events.md: %s lacks the %q row", typ, row)
			}
		}
		if _, ok := payloadTypes[typ]; !ok {
			t.Errorf("%s = %q has no payload type in events.Catalog", where, typ)
		}
	}
	for _, where := range consts {
		if !strings.HasPrefix(where, "events.") {
			t.Errorf("%s: event types are declared in the contract package internal/events only", where)
		}
	}
	for typ := range docs {
		if _, ok := consts[typ]; !ok {
			t.Errorf("docs/events.md documents %s, which no constant in the code defines", typ)
		}
	}
}

// TestDocumentedExamplesMatchThePayloadTypes: each documented example
// decodes strictly into its Go payload type and shows every field of it;
// a field with omitempty must show in at least one example of its type.
func TestDocumentedExamplesMatchThePayloadTypes(t *testing.T) {
	t.Parallel()
	docs := docSections(t)
	optionalSeen := map[reflect.Type]map[string]bool{}
	optionalAll := map[reflect.Type][]string{}
	for typ, rt := range payloadTypes {
		s, ok := docs[typ]
		if !ok {
			t.Errorf("%s is not documented", typ)
			continue
		}
		if len(s.example) == 0 {
			t.Errorf("docs/events.md: %s has no ```json example", typ)
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(s.example))
		dec.DisallowUnknownFields()
		if err := dec.Decode(reflect.New(rt).Interface()); err != nil {
			t.Errorf("docs/events.md: the %s example does not decode into %s: %v", typ, rt, err)
			continue
		}
		if dec.More() {
			t.Errorf("docs/events.md: the %s example has data after the object", typ)
		}
		var obj map[string]any
		if err := json.Unmarshal(s.example, &obj); err != nil {
			t.Errorf("%s: %v", typ, err)
			continue
		}
		required, optional := jsonFields(rt, "")
		for _, f := range required {
			if !has(obj, f) {
				t.Errorf("docs/events.md: the %s example lacks %s (%s)", typ, f, rt)
			}
		}
		optionalAll[rt] = optional
		if optionalSeen[rt] == nil {
			optionalSeen[rt] = map[string]bool{}
		}
		for _, f := range optional {
			if has(obj, f) {
				optionalSeen[rt][f] = true
			}
		}
	}
	for rt, fields := range optionalAll {
		for _, f := range fields {
			if !optionalSeen[rt][f] {
				t.Errorf("docs/events.md: no example of %s shows its optional field %s", rt, f)
			}
		}
	}
}

var leafTypes = map[reflect.Type]bool{reflect.TypeFor[time.Time](): true, reflect.TypeFor[uuid.UUID](): true}

// jsonFields returns the dotted JSON names of every field of t, nested
// structs included, split by omitempty.
func jsonFields(t reflect.Type, prefix string) (required, optional []string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		full := prefix + name
		if strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero") {
			optional = append(optional, full)
		} else {
			required = append(required, full)
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && !leafTypes[ft] {
			r, o := jsonFields(ft, full+".")
			required, optional = append(required, r...), append(optional, o...)
		}
	}
	return required, optional
}

// has reports whether the dotted path exists in obj.
func has(obj map[string]any, path string) bool {
	head, rest, nested := strings.Cut(path, ".")
	v, ok := obj[head]
	if !ok || !nested {
		return ok
	}
	m, ok := v.(map[string]any)
	return ok && has(m, rest)
}
