package clientip_test

import (
	"net/http/httptest"
	"testing"

	"github.com/paygate/paygate/internal/platform/clientip"
	"github.com/paygate/paygate/internal/platform/config"
)

func TestClientIP(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		trusted []string
		peer    string
		xff     []string
		want    string
	}{
		{"no proxies trusted: the peer, whatever the header", nil, "203.0.113.5:4711", []string{"1.2.3.4"}, "203.0.113.5"},
		{"peer not a trusted proxy: header ignored", []string{"10.0.0.0/8"}, "203.0.113.5:4711", []string{"1.2.3.4"}, "203.0.113.5"},
		{"one trusted proxy", []string{"10.0.0.0/8"}, "10.0.0.2:80", []string{"198.51.100.7"}, "198.51.100.7"},
		{"client-supplied leftmost entry changes nothing", []string{"10.0.0.0/8"}, "10.0.0.2:80", []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7"},
		{"spoofed entries in a separate header line", []string{"10.0.0.0/8"}, "10.0.0.2:80", []string{"6.6.6.6", "198.51.100.7"}, "198.51.100.7"},
		{"chain of trusted proxies is skipped", []string{"10.0.0.0/8", "192.168.1.1"}, "10.0.0.2:80", []string{"6.6.6.6, 198.51.100.7, 192.168.1.1, 10.1.2.3"}, "198.51.100.7"},
		{"every entry trusted: the leftmost", []string{"10.0.0.0/8"}, "10.0.0.2:80", []string{"10.9.9.9, 10.1.1.1"}, "10.9.9.9"},
		{"no header from a trusted proxy: the peer", []string{"10.0.0.0/8"}, "10.0.0.2:80", nil, "10.0.0.2"},
		{"garbage stops the walk at the last trusted hop", []string{"10.0.0.0/8"}, "10.0.0.2:80", []string{"198.51.100.7, not-an-ip, 10.1.1.1"}, "10.1.1.1"},
		{"garbage as the only entry: the peer", []string{"10.0.0.0/8"}, "10.0.0.2:80", []string{"junk"}, "10.0.0.2"},
		{"entry with a port", []string{"10.0.0.0/8"}, "10.0.0.2:80", []string{"198.51.100.7:5555"}, "198.51.100.7"},
		{"IPv6 entries and peer", []string{"fd00::/8"}, "[fd00::1]:80", []string{"2001:db8::1, [2001:db8::2]:443"}, "2001:db8::2"},
		{"IPv4-mapped IPv6 peer matches an IPv4 CIDR", []string{"10.0.0.0/8"}, "[::ffff:10.0.0.2]:80", []string{"198.51.100.7"}, "198.51.100.7"},
		{"single-address entry in the list", []string{"127.0.0.1"}, "127.0.0.1:9", []string{"198.51.100.7"}, "198.51.100.7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			prefixes, err := config.ParseCIDRs(c.trusted)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = c.peer
			for _, h := range c.xff {
				req.Header.Add("X-Forwarded-For", h)
			}
			if got := clientip.New(prefixes).IP(req); got != c.want {
				t.Fatalf("IP = %s, want %s", got, c.want)
			}
		})
	}
}

func TestParseCIDRs(t *testing.T) {
	t.Parallel()
	if _, err := config.ParseCIDRs([]string{"10.0.0.0/8", " 192.168.0.1 ", "", "fd00::/8"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.local", "10.0.0"} {
		if _, err := config.ParseCIDRs([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
