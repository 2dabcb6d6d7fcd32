// Package clientip tells which address a request comes from, for the
// limits counted per client (failed logins, registrations).
//
// Behind reverse proxies the peer of the connection is the nearest proxy,
// and the client is in X-Forwarded-For, which each proxy extends on the
// right with the address it received the request from. Everything left of
// what a trusted proxy appended was written by someone else, the client
// included, so it proves nothing. The client IP is therefore the rightmost
// entry that is not a trusted proxy, and the header is read at all only
// when the peer itself is a trusted proxy.
package clientip

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver finds the client IP of requests given the trusted proxies.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a resolver trusting X-Forwarded-For from the given networks
// only. With none, the peer address is always the client IP.
func New(trusted []netip.Prefix) *Resolver {
	return &Resolver{trusted: trusted}
}

func (r *Resolver) isTrusted(a netip.Addr) bool {
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// IP returns the client IP of req as text: the peer address unless the
// peer is a trusted proxy, in which case it is the rightmost
// X-Forwarded-For entry that is not a trusted proxy. When every entry is
// a trusted proxy, the leftmost is the client. An entry that is not an
// address stops the walk: nothing left of it can be trusted, so the last
// trusted hop to its right is taken.
func (r *Resolver) IP(req *http.Request) string {
	peer, ok := parse(hostOf(req.RemoteAddr))
	if !ok {
		return req.RemoteAddr
	}
	if len(r.trusted) == 0 || !r.isTrusted(peer) {
		return peer.String()
	}
	var entries []string
	for _, h := range req.Header.Values("X-Forwarded-For") {
		entries = append(entries, strings.Split(h, ",")...)
	}
	client := peer
	for i := len(entries) - 1; i >= 0; i-- {
		a, ok := parse(entries[i])
		if !ok {
			break
		}
		client = a
		if !r.isTrusted(a) {
			break
		}
	}
	return client.String()
}

func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// parse reads an address as proxies write it: bare, or with a port, IPv6
// in brackets or not; IPv4-mapped IPv6 addresses become IPv4.
func parse(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone("").Unmap(), true
}
