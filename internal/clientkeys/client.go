package clientkeys

import "net/http"

// HTTPClient returns a new client with the rules of the Fetcher's own
// fetches (address check on every dial unless AllowPrivate, bounded
// redirects held to the URL rules, timeouts, no proxy, no cookies), for
// other endpoints of the same party: an external issuer's discovery
// document and introspection endpoint (internal/extauth). Check a URL
// with ValidateURL before using it.
func (f *Fetcher) HTTPClient() *http.Client { return f.newHTTPClient() }
