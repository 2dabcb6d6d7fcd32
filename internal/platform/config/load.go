package config

import (
	"errors"
	"fmt"
	"io"
	"path"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Error reports every configuration variable that could not be loaded.
type Error struct {
	// Problems holds one entry per bad variable, sorted by variable name.
	Problems []VarError
}

// VarError describes one bad or missing variable.
type VarError struct {
	Var    string
	Reason string
}

func (e *Error) Error() string {
	parts := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		parts = append(parts, p.Var+": "+p.Reason)
	}
	return "invalid configuration: " + strings.Join(parts, "; ")
}

// Vars returns the names of the bad variables.
func (e *Error) Vars() []string {
	out := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		out = append(out, p.Var)
	}
	return out
}

// Var describes one configuration variable, as printed by `paygate config`.
type Var struct {
	Name        string
	Type        string
	Default     string
	HasDefault  bool
	Required    bool
	Description string
}

// Load reads the configuration from the environment. Each variable is parsed
// by envconfig on its own, so that one bad value does not hide the others;
// the returned *Error names all of them.
func Load() (Config, error) { return LoadMatching("*") }

// LoadMatching is Load for a command that uses only part of the
// configuration: it reports only the problems of the variables whose name
// matches one of the path.Match patterns (e.g. "PAYGATE_DATABASE_*"), and
// of PAYGATE_ENV and PAYGATE_LOG_LEVEL, which every command uses. So
// `paygate migrate` needs a database URL, not Kafka brokers or a JWT key.
// The other fields are loaded as far as they parse, and must not be used.
func LoadMatching(patterns ...string) (Config, error) {
	patterns = append(patterns, Prefix+"_ENV", Prefix+"_LOG_LEVEL")
	wanted := func(name string) bool {
		for _, p := range patterns {
			if ok, _ := path.Match(p, name); ok {
				return true
			}
		}
		return false
	}
	var cfg Config
	var problems []VarError
	walk(reflect.ValueOf(&cfg).Elem(), func(v reflect.Value, f reflect.StructField, name string) {
		if err := loadField(v, f, name); err != nil {
			problems = append(problems, VarError{Var: name, Reason: err.Error()})
		}
	})
	cfg.Provider.withDevCredentials(cfg.Env)
	// Rules are checked only on variables that parsed: a value that did
	// not parse is reported once, not again as its zero value.
	failed := map[string]bool{}
	for _, p := range problems {
		failed[p.Var] = true
	}
	for _, p := range cfg.validate() {
		if !failed[p.Var] {
			problems = append(problems, p)
		}
	}
	problems = slices.DeleteFunc(problems, func(p VarError) bool { return !wanted(p.Var) })
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b VarError) int { return strings.Compare(a.Var, b.Var) })
		return Config{}, &Error{Problems: problems}
	}
	return cfg, nil
}

// loadField runs envconfig over a one-field struct carrying the field's type
// and tags under the full variable name, then copies the result.
func loadField(dst reflect.Value, f reflect.StructField, name string) error {
	tag := fmt.Sprintf(`envconfig:%q`, name)
	if d, ok := f.Tag.Lookup("default"); ok {
		tag += fmt.Sprintf(` default:%q`, d)
	}
	if r, ok := f.Tag.Lookup("required"); ok {
		tag += fmt.Sprintf(` required:%q`, r)
	}
	one := reflect.New(reflect.StructOf([]reflect.StructField{{Name: "V", Type: f.Type, Tag: reflect.StructTag(tag)}}))
	if err := envconfig.Process("", one.Interface()); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("cannot parse %q as %s", pe.Value, typeName(f.Type))
		}
		if strings.Contains(err.Error(), "required key") {
			return errors.New("required but not set")
		}
		return err
	}
	dst.Set(one.Elem().Field(0))
	return nil
}

// walk calls fn for every leaf field of the struct v, depth first, in
// declaration order.
func walk(v reflect.Value, fn func(v reflect.Value, f reflect.StructField, name string)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]() {
			walk(fv, fn)
			continue
		}
		key, ok := f.Tag.Lookup("envconfig")
		if !ok || key == "-" {
			continue
		}
		fn(fv, f, Prefix+"_"+key)
	}
}

// Vars lists every configuration variable in declaration order.
func Vars() []Var {
	var out []Var
	walk(reflect.ValueOf(&Config{}).Elem(), func(_ reflect.Value, f reflect.StructField, name string) {
		out = append(out, Var{
			Name:        name,
			Type:        typeName(f.Type),
			Default:     f.Tag.Get("default"),
			HasDefault:  hasTag(f, "default"),
			Required:    f.Tag.Get("required") == "true",
			Description: f.Tag.Get("desc"),
		})
	})
	return out
}

func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "duration"
	case t.Kind() == reflect.Slice:
		return "list of " + typeName(t.Elem())
	case t.Kind() == reflect.Bool:
		return "bool"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return "integer"
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		return "unsigned integer"
	case t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32:
		return "number"
	default:
		return "string"
	}
}

// WriteTable prints the variables as an aligned text table.
func WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tDEFAULT\tDESCRIPTION")
	for _, v := range Vars() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, v.Type, defaultCell(v), v.Description)
	}
	return tw.Flush()
}

// WriteMarkdown prints the variables as a Markdown table, the form the
// README carries.
func WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| Variable | Type | Default | Description |\n|---|---|---|---|\n")
	for _, v := range Vars() {
		def := defaultCell(v)
		if def != "(required)" && def != "" {
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", v.Name, v.Type, def, strings.ReplaceAll(v.Description, "|", `\|`))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func defaultCell(v Var) string {
	if v.Required {
		return "(required)"
	}
	if v.Default == "" {
		return `""`
	}
	return v.Default
}

func hasTag(f reflect.StructField, key string) bool {
	_, ok := f.Tag.Lookup(key)
	return ok
}
