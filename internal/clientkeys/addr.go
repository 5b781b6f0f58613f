package clientkeys

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// maxURLLength bounds a jwks_uri; real ones are far shorter.
const maxURLLength = 2048

// forbiddenPublic is the one public sentence for a refused address: it names
// the rule and the fix without saying which address or range matched.
const forbiddenPublic = "jwks_uri must point to a public internet host: smartgate does not fetch from loopback, private, link-local, cloud-metadata or other non-public addresses. Host the JWK Set at a publicly reachable https URL, or register the keys inline with the jwks metadata instead."

// nonPublic lists the ranges an outbound fetch to a client-supplied URL must
// never reach (DESIGN Principle 3). Sources: the IANA IPv4 and IPv6
// Special-Purpose Address Registries (RFC 6890 and its updates). The names go
// to the log only.
var nonPublic = func() []namedPrefix {
	table := []struct{ cidr, name string }{
		{"0.0.0.0/8", "this-network (RFC 791)"},
		{"10.0.0.0/8", "private (RFC 1918)"},
		{"100.64.0.0/10", "shared CGNAT space (RFC 6598)"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local, incl. cloud metadata 169.254.169.254 (RFC 3927)"},
		{"172.16.0.0/12", "private (RFC 1918)"},
		{"192.0.0.0/24", "IETF protocol assignments (RFC 6890)"},
		{"192.0.2.0/24", "documentation (RFC 5737)"},
		{"192.88.99.0/24", "6to4 relay anycast (RFC 7526)"},
		{"192.168.0.0/16", "private (RFC 1918)"},
		{"198.18.0.0/15", "benchmarking (RFC 2544)"},
		{"198.51.100.0/24", "documentation (RFC 5737)"},
		{"203.0.113.0/24", "documentation (RFC 5737)"},
		{"224.0.0.0/4", "multicast"},
		{"240.0.0.0/4", "reserved, incl. broadcast 255.255.255.255"},

		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"::/96", "IPv4-compatible (deprecated, RFC 4291)"},
		{"::ffff:0:0:0/96", "IPv4-translated (RFC 2765)"},
		{"64:ff9b:1::/48", "local-use NAT64 (RFC 8215)"},
		{"100::/64", "discard-only (RFC 6666)"},
		{"2001::/32", "Teredo (RFC 4380)"},
		{"2001:2::/48", "benchmarking (RFC 5180)"},
		{"2001:10::/28", "ORCHID (RFC 4843)"},
		{"2001:20::/28", "ORCHIDv2 (RFC 7343)"},
		{"2001:db8::/32", "documentation (RFC 3849)"},
		{"fc00::/7", "unique local, incl. cloud metadata fd00:ec2::254 (RFC 4193)"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local (deprecated, RFC 3879)"},
		{"ff00::/8", "multicast"},
	}
	out := make([]namedPrefix, len(table))
	for i, r := range table {
		out[i] = namedPrefix{netip.MustParsePrefix(r.cidr), r.name}
	}
	return out
}()

type namedPrefix struct {
	prefix netip.Prefix
	name   string
}

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: IPv4 in the last 32 bits
	sixToFour   = netip.MustParsePrefix("2002::/16")    // RFC 3056: IPv4 in bits 16-47
)

// checkAddr reports whether ip is a public unicast address an outbound fetch
// may reach. IPv4 addresses embedded in IPv6 (mapped, NAT64, 6to4) are judged
// by the IPv4 address they lead to, so ::ffff:127.0.0.1 is loopback.
func checkAddr(ip netip.Addr) error {
	orig := ip
	ip = ip.WithZone("")
	if ip.Is4In6() {
		ip = ip.Unmap()
	}
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64Prefix.Contains(ip):
			ip = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		case sixToFour.Contains(ip):
			ip = netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
		}
	}
	if !ip.IsValid() {
		return newError(ErrForbiddenAddress, forbiddenPublic).detail("no valid address")
	}
	for _, r := range nonPublic {
		if r.prefix.Contains(ip) {
			return newError(ErrForbiddenAddress, forbiddenPublic).detail("address %s is %s", orig, r.name)
		}
	}
	// A catch-all for anything the table misses (the standard library's view
	// of unicast-ness; it counts RFC 1918 as global, hence the table above).
	if !ip.IsGlobalUnicast() {
		return newError(ErrForbiddenAddress, forbiddenPublic).detail("address %s is not global unicast", orig)
	}
	return nil
}

// dialControl is the net.Dialer Control hook: it runs after name resolution,
// on the very address about to be connected, for the first request and for
// every redirect. So neither DNS rebinding (a name that resolves to a public
// address at registration and a private one later) nor a redirect can steer
// the fetch to a forbidden address.
func (f *Fetcher) dialControl(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return newError(ErrForbiddenAddress, forbiddenPublic).detail("dial address %q (%s) is not an IP:port", address, network)
	}
	return f.permit(ap.Addr())
}

// ValidateURL checks a jwks_uri when a client registers it (RFC 7591 §2,
// SMART App Launch 2.2 Backend Services): an absolute https URL (http only
// with AllowPrivate), no fragment, no user info, a syntactically valid host,
// and, outside AllowPrivate, a host that is not "localhost" nor an IP literal
// in a non-public range. Names are checked again, on the resolved addresses,
// at every fetch.
func (f *Fetcher) ValidateURL(raw string) error {
	if len(raw) > maxURLLength {
		return newError(ErrInvalidURL, "jwks_uri is longer than %d characters. Use a shorter URL for the JWK Set.", maxURLLength)
	}
	if strings.Contains(raw, "#") {
		return newError(ErrInvalidURL, "jwks_uri must not contain a fragment (#...). Remove the fragment from the URL.")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return newError(ErrInvalidURL, "jwks_uri is not a valid URL. Register an absolute https URL such as https://client.example.com/.well-known/jwks.json.").cause(err)
	}
	return f.checkURL(u)
}

// checkURL applies the ValidateURL rules, but the fragment one (a fragment is
// never sent, and a redirect's Location may carry one), to a parsed URL;
// redirect targets go through it too.
func (f *Fetcher) checkURL(u *url.URL) error {
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme == "https":
	case scheme == "http" && f.opts.AllowPrivate:
	case scheme == "":
		return newError(ErrInvalidURL, "jwks_uri must be an absolute https URL. Register a URL such as https://client.example.com/.well-known/jwks.json.")
	default:
		return newError(ErrInvalidURL, "jwks_uri must use https, not %s. Serve the JWK Set over https and register that URL.", quote(u.Scheme))
	}
	if u.Opaque != "" || u.Host == "" {
		return newError(ErrInvalidURL, "jwks_uri must be an absolute https URL with a host. Register a URL such as https://client.example.com/.well-known/jwks.json.")
	}
	if u.User != nil {
		return newError(ErrInvalidURL, "jwks_uri must not contain user information (user:password@). Remove it; the JWK Set must be readable without credentials.")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return newError(ErrInvalidURL, "jwks_uri has an invalid port %s. Use a port between 1 and 65535, or none.", quote(p))
		}
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return newError(ErrInvalidURL, "jwks_uri must not contain an IPv6 zone. Use a host name or a public IP address.")
		}
		if f.permit != nil {
			if err := f.permit(ip); err != nil {
				return err
			}
		}
		return nil
	}
	if err := checkHostname(host); err != nil {
		return err
	}
	if f.permit != nil {
		h := strings.TrimSuffix(strings.ToLower(host), ".")
		if h == "localhost" || strings.HasSuffix(h, ".localhost") {
			// RFC 6761 §6.3: these names are loopback by definition.
			return newError(ErrForbiddenAddress, forbiddenPublic).detail("host %q is a localhost name", host)
		}
	}
	return nil
}

// checkHostname accepts DNS host names (letters, digits, hyphens and, as some
// hosts use them, underscores; labels of 1-63; at most 253) whose last label
// starts with a letter. That last rule refuses numeric forms such as
// 2130706433 or 0x7f.1 that some resolvers read as IPv4 addresses.
func checkHostname(host string) error {
	bad := func(why string) error {
		return newError(ErrInvalidURL, "jwks_uri has an invalid host name: %s. Use a DNS name (internationalized names in their xn-- form) or an IP address.", why)
	}
	h := strings.TrimSuffix(host, ".")
	if h == "" {
		return bad("it is empty")
	}
	if len(h) > 253 {
		return bad("it is longer than 253 characters")
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return bad("each dot-separated label must have 1 to 63 characters")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return bad("a label must not start or end with a hyphen")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return bad("only letters, digits and hyphens are allowed")
			}
		}
	}
	last := labels[len(labels)-1]
	if c := last[0]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
		return bad("the last label must start with a letter (numeric forms of IP addresses are not accepted)")
	}
	return nil
}
