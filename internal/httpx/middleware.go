// Package httpx is smartgate's HTTP middleware: request ids, panic recovery,
// structured request logs, Prometheus metrics, security headers and CORS.
// Handlers return errors; the problem package writes them.
package httpx

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"smartgate/internal/requestid"
)

// Middleware wraps a handler.
type Middleware func(http.Handler) http.Handler

// Chain applies ms so that the first is the outermost.
func Chain(h http.Handler, ms ...Middleware) http.Handler {
	for i := len(ms) - 1; i >= 0; i-- {
		h = ms[i](h)
	}
	return h
}

// RequestID gives every request a fresh id, in the context and in the
// X-Request-Id response header. An incoming X-Request-Id is not trusted as
// ours (it could collide or carry log injection) but, when well-formed, is
// logged as upstream_request_id by the logger.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := requestid.New()
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(requestid.With(r.Context(), id)))
	})
}

// Recover turns a panic into a generic 500 written by onPanic, and logs
// the stack (never sent to the client).
func Recover(log *slog.Logger, onPanic func(w http.ResponseWriter, r *http.Request, err error)) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := asRecorder(w)
			defer func() {
				p := recover()
				if p == nil {
					return
				}
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Error("panic", "request_id", requestid.From(r.Context()), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if !rec.wroteHeader {
					onPanic(w, r, fmt.Errorf("panic: %v", p))
				}
			}()
			next.ServeHTTP(rec, r)
		})
	}
}

// Logger writes one structured line per request. It logs the path but never
// the query string or headers, which can carry codes, tokens or secrets.
func Logger(log *slog.Logger) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := asRecorder(w)
			next.ServeHTTP(rec, r)
			attrs := []slog.Attr{
				slog.String("request_id", requestid.From(r.Context())),
				slog.String("method", r.Method),
				slog.String("route", routeLabel(r)),
				slog.String("path", r.URL.Path),
				slog.Int("status", rec.status()),
				slog.Int64("bytes", rec.bytes),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.String("remote", ClientIP(r)),
			}
			if up := r.Header.Get("X-Request-Id"); up != "" && validUpstreamID(up) {
				attrs = append(attrs, slog.String("upstream_request_id", up))
			}
			log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
		})
	}
}

func validUpstreamID(s string) bool {
	if len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// routeLabel is the ServeMux pattern that matched (bounded cardinality for
// metrics); the catch-all "/" for paths no endpoint claims, "unmatched" only outside the mux.
func routeLabel(r *http.Request) string {
	if r.Pattern == "" {
		return "unmatched"
	}
	return r.Pattern
}

// SecurityHeaders sets headers every response carries. HTML pages set
// their own, looser-for-styles Content-Security-Policy before writing.
func SecurityHeaders(hsts bool) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
			h.Set("Cross-Origin-Opener-Policy", "same-origin")
			if hsts {
				h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
			}
			next.ServeHTTP(w, r)
		})
	}
}

// recorder remembers the status and size of a response.
type recorder struct {
	http.ResponseWriter
	code        int
	bytes       int64
	wroteHeader bool
}

func asRecorder(w http.ResponseWriter) *recorder {
	if r, ok := w.(*recorder); ok {
		return r
	}
	return &recorder{ResponseWriter: w}
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush supports streaming responses.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack is not supported by smartgate's endpoints.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, errors.New("hijack not supported")
}

// ClientIP is the address of the client: the connection's peer, or, when the
// peer is a trusted proxy (see TrustProxies), the last untrusted address in
// X-Forwarded-For.
func ClientIP(r *http.Request) string {
	if ip, ok := r.Context().Value(clientIPKey{}).(string); ok {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// IsHTTPS reports whether the client reached us over TLS (directly, or
// through a trusted proxy that said so).
func IsHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	v, _ := r.Context().Value(httpsKey{}).(bool)
	return v
}

func lastToken(s string) string {
	parts := strings.Split(s, ",")
	return strings.TrimSpace(parts[len(parts)-1])
}
