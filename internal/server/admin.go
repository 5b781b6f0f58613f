package server

import (
	"net/http"

	"smartgate/internal/admin"
	"smartgate/internal/problem"
)

// newAdmin builds the administration: the runtime settings follower (the
// oauth server reads s.live), and the service the console and the API
// share, auditing through the node's batched writer.
func (s *Server) newAdmin() {
	a := s.app
	s.settings = admin.NewSettings(a.Store, a.Cfg, s.live, a.Log)
	s.admin = admin.New(admin.Deps{Store: a.Store, Clients: s.oauth.Clients, Users: s.users, Keys: a.Keys,
		Settings: s.settings, Audit: s.audit, Log: a.Log})
}

// adminRoutes registers the admin console (HTML pages, signed in through
// /login) and the admin JSON API (an access token with smartgate:admin).
// Neither answers CORS: the API is for scripts and the CLI, not for
// other sites' pages.
func (s *Server) adminRoutes(mux *http.ServeMux) {
	for _, rt := range admin.NewConsole(s.admin, s.oauth, s.app.Cfg.Login.RequireTOTPForAdmins).Routes() {
		s.handle(mux, rt.Path, problem.SurfaceHTML, false, rt.Methods, handlerFunc(rt.Handler))
	}
	for _, rt := range admin.NewAPI(s.admin, s.tokens).Routes() {
		s.handle(mux, rt.Path, problem.SurfaceOAuth, false, rt.Methods, handlerFunc(rt.Handler))
	}
}
