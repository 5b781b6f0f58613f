package httpx

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

type clientIPKey struct{}
type httpsKey struct{}

// TrustProxies honours X-Forwarded-For and X-Forwarded-Proto only from peers
// in the given addresses or CIDR ranges (config key trusted_proxies). Headers
// from anyone else are ignored, so a client cannot spoof its address.
func TrustProxies(list []string) Middleware {
	trusted := ParseTrusted(list)
	return func(next http.Handler) http.Handler {
		if len(trusted) == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			peer, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil || !trusted.Contains(peer) {
				next.ServeHTTP(w, r)
				return
			}
			ctx := r.Context()
			// Walk X-Forwarded-For from the right, skipping our own proxies.
			client := peer
			if xff := strings.Join(r.Header.Values("X-Forwarded-For"), ","); xff != "" {
				hops := strings.Split(xff, ",")
				for i := len(hops) - 1; i >= 0; i-- {
					h := strings.TrimSpace(hops[i])
					if _, err := netip.ParseAddr(h); err != nil {
						break
					}
					client = h
					if !trusted.Contains(h) {
						break
					}
				}
			}
			ctx = context.WithValue(ctx, clientIPKey{}, client)
			if strings.EqualFold(lastToken(strings.Join(r.Header.Values("X-Forwarded-Proto"), ",")), "https") {
				ctx = context.WithValue(ctx, httpsKey{}, true)
			}
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// Trusted is a set of addresses and ranges (config key trusted_proxies).
type Trusted []netip.Prefix

// ParseTrusted reads IP addresses and CIDR ranges, skipping what parses as
// neither (config.Validate has already reported those).
func ParseTrusted(list []string) Trusted {
	var t Trusted
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			t = append(t, p)
		} else if a, err := netip.ParseAddr(s); err == nil {
			t = append(t, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return t
}

// Contains reports whether ip (IPv4-mapped forms included) is in the set.
func (t Trusted) Contains(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
