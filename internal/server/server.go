// Package server assembles smartgate's HTTP surface: the routes, the
// middleware chain, readiness, metrics and the listener (TLS with reload on
// SIGHUP, graceful shutdown).
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"smartgate/internal/admin"
	"smartgate/internal/app"
	"smartgate/internal/audit"
	"smartgate/internal/changes"
	"smartgate/internal/clientkeys"
	"smartgate/internal/config"
	"smartgate/internal/discovery"
	"smartgate/internal/extauth"
	"smartgate/internal/fhir"
	"smartgate/internal/fhir/devdata"
	"smartgate/internal/httpx"
	"smartgate/internal/identity"
	"smartgate/internal/keys"
	"smartgate/internal/oauth"
	"smartgate/internal/problem"
	"smartgate/internal/token"
)

// Version is the software version reported by the CapabilityStatement
// (cmd/smartgate sets it from its build-time version).
var Version = "dev"

// FHIR is the node's FHIR API (dev mode seeds demo data through it).
func (s *Server) FHIR() *fhir.API { return s.fhir }

// Server is one smartgate node's HTTP side.
type Server struct {
	app      *app.App
	issuer   string
	log      *slog.Logger
	errs     *problem.Writer
	feed     *changes.Feed
	audit    *audit.Writer
	registry *prometheus.Registry
	routes   []Route
	handler  http.Handler

	revs   *token.Revocations
	tokens *token.Service
	oauth  *oauth.Server
	fhir   *fhir.API
	reads  *httpx.Admission // FHIR reads and searches: the running set and its queue
	users  *identity.Service

	// Administration (internal/admin): runtime settings over the loaded
	// configuration, the service the console and the admin API share.
	live     *config.Live
	settings *admin.Settings
	admin    *admin.Service

	portal  *oauth.Portal  // /developers, /docs/try and /sandbox
	sandbox *oauth.Sandbox // error injection; nil unless serve --sandbox
}

// Route is one registered endpoint.
type Route struct {
	Path    string
	Methods []string
	Surface problem.Surface
	CORS    bool
}

// New builds the server for an opened app. issuer is the public base URL
// (in dev mode, derived from the address the listener bound).
func New(a *app.App, issuer string, feed *changes.Feed, aw *audit.Writer) *Server {
	s := &Server{
		app: a, issuer: strings.TrimRight(issuer, "/"), log: a.Log,
		errs:     &problem.Writer{BaseURL: strings.TrimRight(issuer, "/"), Log: a.Log},
		feed:     feed,
		audit:    aw,
		registry: prometheus.NewRegistry(),
	}
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for name, db := range a.Store.Pools() {
		s.registry.MustRegister(collectors.NewDBStatsCollector(db, name))
	}
	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "smartgate_changes_staleness_seconds", Help: "Seconds since this node's view of shared state was last confirmed current.",
	}, func() float64 { return feed.Staleness().Seconds() }))
	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "smartgate_audit_queue_length", Help: "Audit events waiting to be written.",
	}, func() float64 { return float64(aw.QueueLen()) }))
	s.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "smartgate_audit_events_lost_total", Help: "Audit events that could not be written (see the error log).",
	}, func() float64 { _, lost := aw.Counts(); return float64(lost) }))
	metrics := httpx.NewMetrics(s.registry)
	s.reads = httpx.NewAdmission(a.Cfg.FHIRReadSlots(), a.Cfg.FHIR.ReadMaxWait.D(), "fhir_read", s.registry)

	cfg := &a.Cfg.Config
	s.revs = token.NewRevocations(a.Store, nil)
	s.tokens = token.New(a.Keys, s.revs, token.Options{Issuer: s.issuer, Audience: s.issuer + "/fhir"})
	var external fhir.ExternalVerifier // stays a nil interface without issuers
	if len(cfg.Federation.Issuers) > 0 {
		external = extauth.New(extauth.Options{Own: s.issuer, FHIRBase: s.issuer + "/fhir", Issuers: cfg.Federation.Issuers, Dev: cfg.Dev})
	}
	s.fhir = fhir.New(fhir.Deps{External: external,
		Store: a.Store, Tokens: s.tokens, Base: s.issuer + "/fhir", Issuer: s.issuer, Audit: aw, Log: a.Log,
		Software: "smartgate", Version: Version, PractitionerAccess: cfg.FHIR.PractitionerAccess,
		Exports: a.Store, ExportOpts: fhir.ExportOptions{Retention: cfg.Export.Retention.D(), MaxFileLines: cfg.Export.MaxFileResources, MaxActivePerApp: cfg.Export.MaxActivePerClient},
		OAuthURIs: [][2]string{
			{"token", s.issuer + "/oauth2/token"},
			{"register", s.issuer + "/oauth2/register"},
			{"introspect", s.issuer + "/oauth2/introspect"},
			{"revoke", s.issuer + "/oauth2/revoke"},
			{"authorize", s.issuer + "/oauth2/authorize"},
			{"manage", s.issuer + "/account/apps"},
		},
	})
	kek, err := app.LoadKEK(cfg)
	if err != nil {
		a.Log.Error("the KEK could not be loaded; sign-in pages will fail", "error", err.Error())
	}
	s.users = identity.FromConfig(a.Store, cfg, func() (*keys.KEK, error) { return app.LoadKEK(cfg) }, aw)
	if cfg.Sandbox {
		s.sandbox = oauth.NewSandbox(nil)
	}
	s.live = config.NewLive(cfg)
	s.oauth = oauth.New(oauth.Deps{Live: s.live,
		Config: cfg, Issuer: s.issuer, Store: a.Store, Tokens: s.tokens, Audit: aw, Log: a.Log,
		Keys:   clientkeys.New(clientkeys.Options{AllowPrivate: cfg.Dev}),
		Errors: s.errs, KEK: kek, Users: s.users, Patients: s.fhir, Exists: s.fhir.Exists,
		Sandbox: s.sandbox,
	})
	s.portal = oauth.NewPortal(s.oauth)

	s.newAdmin()

	mux := http.NewServeMux()
	s.routesOn(mux)
	// ServeMux answers targets that are not a path ("GET *", "PRI *") with
	// a bare 400; answer them with the error model instead.
	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/") {
			s.errs.Write(w, r, problem.SurfaceOAuth, problem.New(problem.InvalidRequest, "the request target must be an absolute path such as /oauth2/jwks"))
			return
		}
		mux.ServeHTTP(w, r)
	})
	s.handler = httpx.Chain(root,
		httpx.RequestID,
		httpx.TrustProxies(a.Cfg.TrustedProxies),
		httpx.Logger(a.Log),
		metrics.Middleware,
		httpx.SecurityHeaders(strings.HasPrefix(issuer, "https://")),
		httpx.Recover(a.Log, func(w http.ResponseWriter, r *http.Request, err error) {
			s.errs.Write(w, r, surfaceFor(r), problem.Internal(err))
		}),
		maxBody(1<<20, fhir.MaxBody),
	)
	s.portal.SetHandler(s.handler) // the walkthrough's requests go through the whole node
	return s
}

// Handler is the whole HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Routes lists every registered endpoint (the leak test walks them all).
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

// handlerFunc is what endpoints implement: they return errors, and one place
// writes them.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle registers path for the given methods. Other methods get 405 with
// Allow; CORS routes also answer preflight requests.
func (s *Server) handle(mux *http.ServeMux, path string, surface problem.Surface, cors bool, methods []string, h handlerFunc) {
	s.routes = append(s.routes, Route{Path: path, Methods: methods, Surface: surface, CORS: cors})
	var hh http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.errs.Write(w, r, surface, err)
		}
	})
	if cors {
		hh = httpx.CORS(methods, hh)
	}
	for _, m := range methods {
		mux.Handle(m+" "+path, hh) // a GET pattern also serves HEAD
	}
	allowed := append([]string(nil), methods...)
	if slices.Contains(methods, http.MethodGet) {
		allowed = append(allowed, http.MethodHead)
	}
	if cors {
		allowed = append(allowed, http.MethodOptions)
		mux.Handle(http.MethodOptions+" "+path, hh)
	}
	sort.Strings(allowed)
	allow := strings.Join(allowed, ", ")
	mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		if cors {
			httpx.AllowAnyOrigin(w) // so a browser app can read the error
		}
		s.errs.Write(w, r, surface, problem.New(problem.MethodNotAllowed, "%s is not allowed on %s; use %s", sanitizeMethod(r.Method), r.URL.Path, allow))
	}))
}

func sanitizeMethod(m string) string {
	if len(m) > 16 {
		m = m[:16]
	}
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r == '-' {
			return r
		}
		return '?'
	}, m)
}

func (s *Server) routesOn(mux *http.ServeMux) {
	get := []string{http.MethodGet}
	post := []string{http.MethodPost}
	s.handle(mux, "/oauth2/jwks", problem.SurfaceOAuth, true, get, s.jwks)
	s.handle(mux, "/oauth2/token", problem.SurfaceOAuth, true, post, s.oauth.Token)
	s.handle(mux, "/oauth2/introspect", problem.SurfaceOAuth, false, post, s.oauth.Introspect)
	s.handle(mux, "/oauth2/revoke", problem.SurfaceOAuth, true, post, s.oauth.Revoke)
	s.handle(mux, "/oauth2/register", problem.SurfaceOAuth, true, post, s.oauth.Register)
	getPost := []string{http.MethodGet, http.MethodPost}
	s.handle(mux, "/oauth2/authorize", problem.SurfaceHTML, false, getPost, s.oauth.Authorize)
	s.handle(mux, "/oauth2/par", problem.SurfaceOAuth, false, post, s.oauth.PAR)
	s.handle(mux, "/oauth2/userinfo", problem.SurfaceOAuth, true, getPost, s.oauth.UserInfo)
	s.handle(mux, "/oauth2/launch", problem.SurfaceOAuth, false, post, s.oauth.Launch)
	s.handle(mux, "/oauth2/logout", problem.SurfaceHTML, false, getPost, s.oauth.Logout)
	s.handle(mux, "/login", problem.SurfaceHTML, false, getPost, s.oauth.Login)
	s.handle(mux, "/login/upstream/{id}", problem.SurfaceHTML, false, post, s.oauth.LoginUpstream)
	s.handle(mux, "/login/callback", problem.SurfaceHTML, false, get, s.oauth.LoginCallback)
	s.handle(mux, "/select-patient", problem.SurfaceHTML, false, getPost, s.oauth.SelectPatient)
	s.handle(mux, "/consent", problem.SurfaceHTML, false, getPost, s.oauth.Consent)
	s.handle(mux, "/account/apps", problem.SurfaceHTML, false, getPost, s.oauth.AccountApps)
	s.handle(mux, "/oauth2/register/{client_id}", problem.SurfaceOAuth, true, []string{http.MethodGet, http.MethodPut, http.MethodDelete}, s.registration)
	for _, d := range discovery.Documents {
		s.handle(mux, d.Path, problem.SurfaceOAuth, true, get, s.discovery(d))
	}
	s.adminRoutes(mux)
	s.fhirRoutes(mux)
	s.handle(mux, "/healthz", problem.SurfaceOAuth, false, get, s.healthz)
	s.handle(mux, "/readyz", problem.SurfaceOAuth, false, get, s.readyz)
	promh := promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	s.handle(mux, "/metrics", problem.SurfaceOAuth, false, get, func(w http.ResponseWriter, r *http.Request) error {
		promh.ServeHTTP(w, r)
		return nil
	})
	s.handle(mux, "/docs/errors", problem.SurfaceHTML, false, get, s.errorsPage)
	s.portalRoutes(mux)
	s.handle(mux, "/{$}", problem.SurfaceHTML, false, get, s.home)
	s.handle(mux, "/favicon.ico", problem.SurfaceHTML, false, get, func(w http.ResponseWriter, r *http.Request) error {
		// No icon: an empty answer browsers cache, instead of a 404 on every page.
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	s.handle(mux, "/static/", problem.SurfaceHTML, false, get, s.static())
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.errs.Write(w, r, surfaceFor(r), problem.New(problem.NotFound, "nothing is served at this path; discovery documents and docs/ list every endpoint"))
	}))
}

// portalRoutes registers the developer pages (docs/portal.md): the portal
// and the walkthrough always, the sandbox only in sandbox mode.
func (s *Server) portalRoutes(mux *http.ServeMux) {
	get, post := []string{http.MethodGet}, []string{http.MethodPost}
	getPost := []string{http.MethodGet, http.MethodPost}
	s.handle(mux, "/developers", problem.SurfaceHTML, false, get, s.portal.Developers)
	s.handle(mux, "/developers/register", problem.SurfaceHTML, false, post, s.portal.Register)
	s.handle(mux, "/developers/apps", problem.SurfaceHTML, false, post, s.portal.App)
	s.handle(mux, "/developers/apps/{client_id}", problem.SurfaceHTML, false, getPost, s.portal.App)
	s.handle(mux, "/docs/try", problem.SurfaceHTML, false, get, s.portal.Try)
	s.handle(mux, "/docs/try/start", problem.SurfaceHTML, false, post, s.portal.TryStart)
	s.handle(mux, "/docs/try/callback", problem.SurfaceHTML, false, get, s.portal.TryCallback)
	s.handle(mux, "/docs/try/token", problem.SurfaceHTML, false, post, s.portal.TryToken)
	s.handle(mux, "/docs/try/fhir", problem.SurfaceHTML, false, post, s.portal.TryFHIR)
	if s.sandbox != nil {
		s.handle(mux, "/sandbox", problem.SurfaceHTML, false, get, s.portal.SandboxPage)
		s.handle(mux, "/sandbox/launch", problem.SurfaceHTML, false, post, s.portal.SandboxLaunch)
		s.handle(mux, "/sandbox/inject", problem.SurfaceHTML, false, post, s.portal.SandboxInject)
	}
}

// fhirRoutes registers the FHIR API: one method-less pattern for the whole
// tree (the API dispatches by path and method itself), so that the more
// specific /fhir/.well-known/smart-configuration keeps its own route.
func (s *Server) fhirRoutes(mux *http.ServeMux) {
	s.routes = append(s.routes, Route{Path: "/fhir/metadata", Methods: fhir.Methods, Surface: problem.SurfaceFHIR, CORS: true})
	allowed := strings.Join(append(append([]string(nil), fhir.Methods...), http.MethodHead, http.MethodOptions), ", ")
	hh := httpx.CORS(fhir.Methods, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			r.Method = http.MethodGet // net/http drops the body of a HEAD response
		}
		if s.sandbox != nil {
			r = r.WithContext(fhir.WithSandbox(r.Context(), s.sandbox))
		}
		if !slices.Contains(fhir.Methods, r.Method) {
			w.Header().Set("Allow", allowed)
			s.errs.Write(w, r, problem.SurfaceFHIR, problem.New(problem.MethodNotAllowed, "%s is not allowed on %s; use %s", sanitizeMethod(r.Method), r.URL.Path, allowed))
			return
		}
		// Reads and searches wait for a slot; writes queue for the
		// database's writer instead, and a Bulk Data file streams to a
		// client of any speed, so neither holds one.
		if fhir.IsRead(r) {
			held, err := s.reads.Enter(r.Context())
			if err != nil {
				return // the client went away while it waited
			}
			if held {
				defer s.reads.Leave()
			}
		}
		if err := s.fhir.ServeFHIR(w, r); err != nil {
			s.errs.Write(w, r, problem.SurfaceFHIR, err)
		}
	}))
	mux.Handle("/fhir", hh)
	mux.Handle("/fhir/{path...}", hh)
}

// surfaceFor picks how to render an error for a request no route claimed.
func surfaceFor(r *http.Request) problem.Surface {
	switch {
	case r.URL.Path == "/fhir" || strings.HasPrefix(r.URL.Path, "/fhir/"):
		return problem.SurfaceFHIR
	case strings.HasPrefix(r.URL.Path, "/oauth2/"), strings.HasPrefix(r.URL.Path, "/.well-known/"), strings.HasPrefix(r.URL.Path, "/admin/api/"):
		return problem.SurfaceOAuth
	case strings.HasPrefix(r.URL.Path, "/developers/"), strings.HasPrefix(r.URL.Path, "/docs/try/"):
		return problem.SurfaceHTML // under the developer pages
	case r.URL.Path == "/admin", strings.HasPrefix(r.URL.Path, "/admin/"):
		return problem.SurfaceHTML // the admin console
	case strings.Contains(r.Header.Get("Accept"), "text/html"):
		return problem.SurfaceHTML
	}
	return problem.SurfaceOAuth
}

// maxBody caps request bodies: n everywhere, fhirN under /fhir (where a
// transaction Bundle may be large).
func maxBody(n, fhirN int64) httpx.Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Body != nil {
				limit := n
				if strings.HasPrefix(r.URL.Path, "/fhir") {
					limit = fhirN
				}
				r.Body = http.MaxBytesReader(w, r.Body, limit)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Features is what discovery may advertise today.
func (s *Server) Features() discovery.Features {
	return discovery.Features{
		Issuer: s.issuer, FHIRBase: s.issuer + "/fhir", JWKS: true, Token: true, Registration: true, Introspection: true, Revocation: true,
		Authorize: true, UserInfo: true, PAR: true, EndSession: true, Management: true,
		ResponseTypes:            []string{"code"},
		GrantTypes:               s.oauth.GrantTypes(),
		TokenAuthMethods:         oauth.AuthMethods,
		TokenAuthSigningAlgs:     oauth.AssertionAlgs,
		CodeChallengeMethods:     []string{"S256"},
		Scopes:                   oauth.Scopes(),
		Claims:                   oauth.Claims,
		IDTokenSigningAlgs:       []string{"RS256"},
		SubjectTypes:             []string{"public"},
		SMARTCapabilities:        oauth.Capabilities,
		AuthorizationResponseIss: true,
	}
}

// registration dispatches the RFC 7592 methods of /oauth2/register/{client_id}.
func (s *Server) registration(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
		return s.oauth.RegistrationRead(w, r)
	case http.MethodPut:
		return s.oauth.RegistrationUpdate(w, r)
	default:
		return s.oauth.RegistrationDelete(w, r)
	}
}

// Start begins following the change sequence: keys reload when any
// process rotates or rewraps them, revocations load within a second on
// every node, and cached clients are dropped when they change. The feed
// notes its starting position first and the caches load after it, so a
// change committed while the node was starting is never missed.
func (s *Server) Start(ctx context.Context) error {
	a := s.app
	s.feed.Subscribe("keys", func(ctx context.Context, _ []string) error { return a.Keys.Reload(ctx) })
	s.feed.Subscribe("revocations", func(ctx context.Context, _ []string) error { return s.revs.Load(ctx) })
	s.feed.Subscribe("clients", func(_ context.Context, ids []string) error { s.oauth.Clients.Invalidate(ids); return nil })
	s.feed.Subscribe("settings", func(ctx context.Context, _ []string) error { return s.settings.Load(ctx) })
	if err := s.feed.Start(ctx); err != nil {
		return err
	}
	if err := a.Keys.Reload(ctx); err != nil {
		return err
	}
	if err := s.settings.Load(ctx); err != nil {
		return err
	}
	s.oauth.Clients.Invalidate([]string{""})
	if err := s.revs.Load(ctx); err != nil {
		return err
	}
	if a.Cfg.Dev {
		if err := s.seedDevData(ctx); err != nil {
			return err
		}
		// The walkthrough's client returns to this node's /docs/try/callback.
		if err := oauth.EnsureWalkthroughClient(ctx, s.oauth.Clients, s.issuer); err != nil {
			s.log.Warn("the walkthrough's client could not be set up; /docs/try says why", "error", err.Error())
		}
	}
	go s.janitor(ctx)
	go s.fhir.RunExporter(ctx, token.NewID())
	return nil
}

// seedDevData loads the demo data set on a dev node's first start (when no
// FHIR resource was ever stored), so every flow has patients to show.
func (s *Server) seedDevData(ctx context.Context) error {
	empty, err := s.fhir.Empty(ctx)
	if err != nil || !empty {
		return err
	}
	var rs []fhir.SeedResource
	for _, r := range devdata.Set() {
		rs = append(rs, fhir.SeedResource{Type: r.Type, ID: r.ID, Body: r.Body})
	}
	if err := s.fhir.Seed(ctx, rs, true); err != nil {
		return fmt.Errorf("loading the dev data set: %w", err)
	}
	s.log.Info("dev data loaded", "resources", len(rs), "patients", strings.Join(devdata.Patients(), ","))
	return nil
}

// janitor deletes expired revocations and assertion ids now and then.
func (s *Server) janitor(ctx context.Context) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := time.Now()
			if err := s.app.Store.PruneRevocations(ctx, now); err != nil && ctx.Err() == nil {
				s.log.Warn("pruning revocations failed", "error", err.Error())
			}
			if err := s.app.Store.PruneAssertions(ctx, now); err != nil && ctx.Err() == nil {
				s.log.Warn("pruning assertion ids failed", "error", err.Error())
			}
			// Used codes are kept an hour past their expiry, so that a
			// replay is still recognised (and its grant revoked) meanwhile.
			for name, prune := range map[string]func() error{
				"authorization state": func() error { return s.app.Store.PruneAuthz(ctx, now.Add(-time.Hour)) },
				"login sessions":      func() error { return s.app.Store.PruneLoginSessions(ctx, now) },
				"login throttles":     func() error { return s.app.Store.PruneThrottles(ctx, now.Add(-24*time.Hour)) },
				"expired exports": func() error {
					_, err := s.app.Store.PruneExports(ctx, now)
					return err
				},
			} {
				if err := prune(); err != nil && ctx.Err() == nil {
					s.log.Warn("pruning "+name+" failed", "error", err.Error())
				}
			}
		}
	}
}

// readyTimeout bounds the database probe of /readyz.
const readyTimeout = 2 * time.Second
