package oauth

import (
	"net/netip"
	"net/url"
	"strings"

	"smartgate/internal/problem"
)

// ValidateRedirectURI applies the redirect URI rules: https; or http on a
// loopback IP literal (RFC 8252 §7.3, where any port matches at authorize);
// or, for public native apps only, a private-use URI scheme in reverse
// domain name form (RFC 8252 §7.1). No fragment (RFC 6749 §3.1.2).
func ValidateRedirectURI(raw string, public bool) error {
	bad := func(rule string, args ...any) error {
		return problem.New(problem.InvalidRedirectURI, "redirect_uris: %q "+rule, append([]any{raw}, args...)...)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return bad("is not an absolute URI; write it like https://app.example.com/callback")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return bad("has a fragment (#...); redirect URIs must not (RFC 6749 section 3.1.2)")
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return bad("has no host")
		}
		if u.User != nil {
			return bad("must not carry user info")
		}
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return bad("uses localhost; use the loopback IP literal http://127.0.0.1:PORT/... or http://[::1]:PORT/... instead (RFC 8252 section 8.3)")
		}
		if a, err := netip.ParseAddr(host); err == nil && a.IsLoopback() {
			return nil
		}
		return bad("uses http on a non-loopback host; use https, or http://127.0.0.1 for an app on the user's machine (RFC 8252 section 7.3)")
	default:
		if !public {
			return bad("uses the private-use scheme %q, which only public native apps may register (token_endpoint_auth_method none; RFC 8252 section 7.1); use https", u.Scheme)
		}
		if !strings.Contains(u.Scheme, ".") {
			return bad("uses the scheme %q; a private-use scheme must be a reverse domain name you control, such as com.example.app (RFC 8252 section 7.1)", u.Scheme)
		}
		switch u.Scheme {
		case "javascript", "data", "file", "vbscript", "blob":
			return bad("uses a forbidden scheme")
		}
		return nil
	}
}

// MatchRedirectURI reports whether the redirect_uri of an authorization
// request matches a registered one: exactly, except that the port of a
// loopback http URI may differ (RFC 8252 §7.3).
func MatchRedirectURI(registered []string, requested string) bool {
	for _, r := range registered {
		if r == requested {
			return true
		}
	}
	req, err := url.Parse(requested)
	if err != nil || req.Scheme != "http" {
		return false
	}
	ra, err := netip.ParseAddr(req.Hostname())
	if err != nil || !ra.IsLoopback() {
		return false
	}
	for _, r := range registered {
		u, err := url.Parse(r)
		if err != nil || u.Scheme != "http" || u.Hostname() != req.Hostname() {
			continue
		}
		if u.EscapedPath() == req.EscapedPath() && u.RawQuery == req.RawQuery {
			return true
		}
	}
	return false
}

// isLoopbackHost reports whether host is a loopback IP literal.
func isLoopbackHost(host string) bool {
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
