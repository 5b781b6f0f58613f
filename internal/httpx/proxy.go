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
	var prefixes []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			prefixes = append(prefixes, p)
		} else if a, err := netip.ParseAddr(s); err == nil {
			prefixes = append(prefixes, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	trusted := func(ip string) bool {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return false
		}
		a = a.Unmap()
		for _, p := range prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return func(next http.Handler) http.Handler {
		if len(prefixes) == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			peer, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil || !trusted(peer) {
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
					if !trusted(h) {
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
