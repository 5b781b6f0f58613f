package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// PAR is POST /oauth2/par, pushed authorization requests (RFC 9126): the
// client authenticates as at the token endpoint and pushes the
// authorization request's parameters; it gets a request_uri to send the
// browser to /oauth2/authorize with. Every error is JSON (no browser is
// involved yet).
func (s *Server) PAR(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	form, err := parseForm(r)
	if err != nil {
		return err
	}
	c, err := s.authenticate(ctx, r, form)
	if err != nil {
		return err
	}
	if form.Get("request_uri") != "" {
		return problem.New(problem.InvalidRequest, "request_uri must not be pushed (RFC 9126 section 2.1); push the authorization parameters themselves")
	}
	if id := form.Get("client_id"); id != "" && id != c.ID {
		return problem.New(problem.InvalidRequest, "client_id %q differs from the authenticated client %s", id, c.ID)
	}
	form.Set("client_id", c.ID)
	if _, _, err := s.validateAuthorize(ctx, form, true); err != nil {
		var ae *authzError
		if errors.As(err, &ae) {
			return ae.err
		}
		return err
	}
	params := url.Values{}
	for _, k := range authorizeParams {
		if v := form.Get(k); v != "" {
			params.Set(k, v)
		}
	}
	b, err := json.Marshal(params)
	if err != nil {
		return problem.Internal(err)
	}
	id, hash := NewSecret()
	if err := s.Store.CreatePushedRequest(ctx, store.PushedRequest{Hash: hash, ClientID: c.ID, Params: b, ExpiresAt: s.Clock().Add(PARTTL).UTC()}); err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, map[string]any{"request_uri": requestURIPrefix + id, "expires_in": int(PARTTL.Seconds())})
}

// takePushed returns the parameters of a pushed request (single use) for
// the client that pushed it.
func (s *Server) takePushed(ctx context.Context, requestURI string, c *Client) (url.Values, error) {
	id, ok := strings.CutPrefix(requestURI, requestURIPrefix)
	if !ok || id == "" {
		return nil, problem.New(problem.InvalidRequestURI, "request_uri %q was not issued here; push the request with POST /oauth2/par and use the request_uri it returns", requestURI)
	}
	h := sha256.Sum256([]byte(id))
	pr, err := s.Store.TakePushedRequest(ctx, h[:], s.Clock())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, problem.New(problem.InvalidRequestURI, "the request_uri is unknown or was used already (each is valid once); push the request again")
	case errors.Is(err, store.ErrExpired):
		return nil, problem.New(problem.InvalidRequestURI, "the request_uri expired (valid %d seconds); push the request again and send the browser at once", int(PARTTL.Seconds()))
	case err != nil:
		return nil, err
	}
	if pr.ClientID != c.ID {
		return nil, problem.New(problem.InvalidRequestURI, "the request_uri was pushed by another client")
	}
	var q url.Values
	if err := json.Unmarshal(pr.Params, &q); err != nil {
		return nil, problem.Internal(err)
	}
	return q, nil
}
