package oauth

import (
	"net/http"

	"smartgate/internal/store"
)

// The browser session and CSRF protection of the sign-in pages, for other
// pages of the same site (the admin console): they sign in through /login
// like any user and share its cookies.

// SignedIn returns the live login session of the browser that sent r and
// its user.
func (s *Server) SignedIn(r *http.Request) (*store.LoginSession, store.User, bool) {
	sess, u, _ := s.currentSession(r)
	return sess, u, sess != nil
}

// CSRFToken returns the browser's CSRF token for a form (the double-submit
// cookie), setting the cookie when there is none.
func (s *Server) CSRFToken(w http.ResponseWriter, r *http.Request) string { return s.csrfToken(w, r) }

// CheckCSRF checks a POST form's csrf_token against the browser's cookie;
// call it after r.ParseForm.
func (s *Server) CheckCSRF(r *http.Request) error { return s.checkCSRF(r) }
