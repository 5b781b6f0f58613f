package httpx

import (
	"net/http"
	"strings"
)

// CORS headers for the endpoints browsers' JavaScript apps call directly
// (discovery, JWKS, register, token, revoke, userinfo, FHIR). Bearer tokens
// travel in the Authorization header, never in cookies, so any origin may
// call these and credentials are not allowed. Browser-flow pages
// (/authorize, login, consent, admin) never get CORS headers.
var (
	corsAllowHeaders  = strings.Join([]string{"Authorization", "Content-Type", "Accept", "Prefer", "If-Match", "If-None-Match", "If-None-Exist", "If-Modified-Since", "X-Request-Id"}, ", ")
	corsExposeHeaders = strings.Join([]string{"Location", "ETag", "Content-Location", "Last-Modified", "X-Request-Id", "X-Progress", "Retry-After", "WWW-Authenticate"}, ", ")
)

// AllowAnyOrigin sets the CORS response headers of a public endpoint.
func AllowAnyOrigin(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
}

// CORS adds the response headers to a handler of allowed methods and
// answers preflight requests.
func CORS(methods []string, next http.Handler) http.Handler {
	allow := strings.Join(append(append([]string(nil), methods...), http.MethodOptions), ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Sent whether or not the request has an Origin: the answer does not
		// depend on it, so a shared cache may serve it to any browser.
		AllowAnyOrigin(w)
		if r.Method == http.MethodOptions {
			h := w.Header()
			h.Set("Allow", allow)
			if r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", allow)
				h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
				h.Set("Access-Control-Max-Age", "86400")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}
