package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Defaults returns the configuration that the `default:` tags describe,
// without reading the environment: what Load returns when no variable is
// set, except that the required variables (the database URL, the brokers,
// the signing key) are left empty. Tests start from it and override only
// what they need, so that a default changed here is the default they run
// with too.
func Defaults() Config {
	var cfg Config
	walk(reflect.ValueOf(&cfg).Elem(), func(v reflect.Value, f reflect.StructField, name string) {
		// As in envconfig, an empty default leaves the zero value.
		d := f.Tag.Get("default")
		if d == "" {
			return
		}
		if err := parseDefault(v, d); err != nil {
			// The tags are constants of this package; its tests check that
			// every one of them parses.
			panic(fmt.Sprintf("config: default of %s: %v", name, err))
		}
	})
	return cfg
}

// parseDefault sets v from the text s the way envconfig parses a
// variable's value for the kinds of field Config has: durations, integers,
// floats, booleans, strings, and comma-separated lists of them.
func parseDefault(v reflect.Value, s string) error {
	if v.Type() == reflect.TypeFor[time.Duration]() {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 0, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 0, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetFloat(f)
	case reflect.Slice:
		parts := strings.Split(s, ",")
		out := reflect.MakeSlice(v.Type(), len(parts), len(parts))
		for i, p := range parts {
			if err := parseDefault(out.Index(i), p); err != nil {
				return err
			}
		}
		v.Set(out)
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}
