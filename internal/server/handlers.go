package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"strings"

	"smartgate/internal/discovery"
	"smartgate/internal/httpx"
	"smartgate/internal/keys"
	"smartgate/internal/problem"
	"smartgate/internal/requestid"
	"smartgate/web"
)

// jwks serves the public keys (RFC 7517 §5). The max-age is the publish
// period of a rotated key: a client that cached the set sees a new key
// before it signs anything.
func (s *Server) jwks(w http.ResponseWriter, r *http.Request) error {
	b, err := s.app.Keys.JWKS()
	if err != nil {
		return problem.Internal(err)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(s.app.Cfg.Keys.JWKSMaxAge.D().Seconds())))
	_, _ = w.Write(b)
	return nil
}

func (s *Server) discovery(d discovery.Document) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		doc, missing := d.Render(s.Features())
		if len(missing) > 0 {
			return problem.New(problem.DiscoveryNotAvailable, "%s (%s) is not served yet: the server does not yet support the required field(s) %s", d.Path, d.Spec, strings.Join(missing, ", "))
		}
		return writeJSON(w, http.StatusOK, doc, "public, max-age=3600")
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"}, "no-store")
}

type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// readyz fails while the node cannot serve correctly: database unreachable,
// no usable signing key, or a view of shared state older than
// changes.stale_after. Details stay generic; the causes are logged.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	var checks []check
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.app.Store.Ping(ctx); err != nil {
		s.log.Warn("readyz: database ping failed", "error", err.Error())
		checks = append(checks, check{Name: "database", Detail: "the database does not answer"})
	} else {
		checks = append(checks, check{Name: "database", OK: true})
	}
	keysOK := true
	for _, alg := range keys.Algs {
		if _, err := s.app.Keys.Signer(alg); err != nil {
			keysOK = false
		}
	}
	if keysOK {
		checks = append(checks, check{Name: "signing_keys", OK: true})
	} else {
		checks = append(checks, check{Name: "signing_keys", Detail: "no usable signing key; run smartgate doctor"})
	}
	stale := s.feed.Staleness()
	if limit := s.app.Cfg.Changes.StaleAfter.D(); stale > limit {
		checks = append(checks, check{Name: "changes", Detail: fmt.Sprintf("view of shared state is %.1fs old (limit %s)", stale.Seconds(), limit)})
	} else {
		checks = append(checks, check{Name: "changes", OK: true})
	}
	body := map[string]any{"status": "ready", "checks": checks, "request_id": requestid.From(r.Context())}
	code := http.StatusOK
	for _, c := range checks {
		if !c.OK {
			code = http.StatusServiceUnavailable
			body["status"] = "not ready"
			body["error_uri"] = s.errs.DocURL(problem.NotReady)
		}
	}
	return writeJSON(w, code, body, "no-store")
}

func (s *Server) errorsPage(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	return problem.WriteReferencePage(w)
}

var homePage = web.Templates("home.html")

func (s *Server) home(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	return homePage.ExecuteTemplate(w, "layout", map[string]any{"Issuer": s.issuer, "Dev": s.app.Cfg.Dev})
}

func (s *Server) static() handlerFunc {
	fsrv := http.StripPrefix("/static/", http.FileServerFS(web.Static()))
	return func(w http.ResponseWriter, r *http.Request) error {
		name := strings.TrimPrefix(r.URL.Path, "/static/")
		if name == "" || strings.HasSuffix(name, "/") || !fs.ValidPath(name) {
			return problem.New(problem.NotFound, "no static file at this path")
		}
		if _, err := fs.Stat(web.Static(), name); err != nil {
			return problem.New(problem.NotFound, "no static file at this path")
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		if name == "smart-style.json" {
			// smart_style_url: apps in other origins read it.
			httpx.AllowAnyOrigin(w)
		}
		fsrv.ServeHTTP(w, r)
		return nil
	}
}

func writeJSON(w http.ResponseWriter, code int, v any, cacheControl string) error {
	b, err := json.Marshal(v)
	if err != nil {
		return problem.Internal(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", cacheControl)
	w.WriteHeader(code)
	_, _ = w.Write(b)
	return nil
}
