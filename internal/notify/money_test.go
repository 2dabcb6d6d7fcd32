package notify

import (
	"math"
	"testing"
)

func TestFormatAmount(t *testing.T) {
	t.Parallel()
	cases := []struct {
		minor    int64
		currency string
		want     string
	}{
		{0, "IDR", "IDR 0"},
		{999, "IDR", "IDR 999"},
		{1000, "IDR", "IDR 1.000"},
		{150000, "IDR", "IDR 150.000"},
		{1234567, "IDR", "IDR 1.234.567"},
		{50000000, "idr", "IDR 50.000.000"},
		{-150000, "IDR", "-IDR 150.000"},
		{math.MaxInt64, "IDR", "IDR 9.223.372.036.854.775.807"},
		{math.MinInt64, "IDR", "-IDR 9.223.372.036.854.775.808"},
		{123456, "USD", "USD 1.234,56"},
		{5, "USD", "USD 0,05"},
		{100, "XYZ", "XYZ 1,00"},
	}
	for _, c := range cases {
		if got := FormatAmount(c.minor, c.currency); got != c.want {
			t.Errorf("FormatAmount(%d, %q) = %q, want %q", c.minor, c.currency, got, c.want)
		}
	}
}

func TestMaskAccount(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"1234567890123456": "****3456", "1234": "****1234", "  98765 ": "****8765"} {
		if got := maskAccount(in); got != want {
			t.Errorf("maskAccount(%q) = %q, want %q", in, got, want)
		}
	}
}
