package config

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ParseEd25519PrivateKey decodes a base64 (standard or URL, padded or not)
// Ed25519 seed of 32 bytes or private key of 64 bytes.
func ParseEd25519PrivateKey(s string) (ed25519.PrivateKey, error) {
	b, err := decodeBase64(s)
	if err != nil {
		return nil, errors.New("is not base64")
	}
	switch len(b) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case ed25519.PrivateKeySize:
		return ed25519.PrivateKey(b), nil
	default:
		return nil, fmt.Errorf("must decode to %d or %d bytes", ed25519.SeedSize, ed25519.PrivateKeySize)
	}
}

// ParseVerifyKeys decodes "kid=base64-public-key" entries.
func ParseVerifyKeys(entries []string) (map[string]ed25519.PublicKey, error) {
	out := map[string]ed25519.PublicKey{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		kid, key, ok := strings.Cut(e, "=")
		if !ok || kid == "" {
			return nil, fmt.Errorf("entry %q is not kid=key", kid)
		}
		b, err := decodeBase64(key)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("key of kid %q is not a base64 %d-byte Ed25519 public key", kid, ed25519.PublicKeySize)
		}
		out[kid] = ed25519.PublicKey(b)
	}
	return out, nil
}

func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// ParseCIDRs parses PAYGATE_TRUSTED_PROXIES: CIDRs such as 10.0.0.0/8, or
// single addresses, which stand for themselves (/32 or /128). Blank
// entries are skipped.
func ParseCIDRs(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an IP address", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
