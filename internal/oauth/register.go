package oauth

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"smartgate/internal/audit"
	"smartgate/internal/httpx"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// registrationResponse is the RFC 7591 §3.2.1 client information response,
// with smartgate's approval status so that a developer knows at once
// whether the client can be used.
type registrationResponse struct {
	store.ClientMetadata
	ClientID                string `json:"client_id"`
	ClientSecret            string `json:"client_secret,omitempty"`
	ClientIDIssuedAt        int64  `json:"client_id_issued_at"`
	ClientSecretExpiresAt   *int64 `json:"client_secret_expires_at,omitempty"`
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string `json:"registration_client_uri"`
	Status                  string `json:"smartgate_status"`
	Verified                bool   `json:"smartgate_verified"`
	StatusDescription       string `json:"smartgate_status_description"`
}

func (s *Server) registrationResponse(c *Client, secret, regToken string) registrationResponse {
	resp := registrationResponse{
		ClientMetadata: c.Metadata, ClientID: c.ID, ClientSecret: secret, ClientIDIssuedAt: c.CreatedAt.Unix(),
		RegistrationAccessToken: regToken, RegistrationClientURI: s.Issuer + "/oauth2/register/" + c.ID,
		Status: c.Status, Verified: c.Verified,
	}
	if c.Type == ConfidentialSymmetric {
		var exp int64
		if !c.SecretExpiresAt.IsZero() {
			exp = c.SecretExpiresAt.Unix()
		}
		resp.ClientSecretExpiresAt = &exp // RFC 7591: REQUIRED with a secret; 0 means never
	}
	switch c.Status {
	case store.ClientPending:
		resp.StatusDescription = "Registered, waiting for an administrator's approval before it can get tokens (smartgate client enable " + c.ID + "). Only public apps that ask for patient-level scopes are enabled at once."
	case store.ClientDisabled:
		resp.StatusDescription = "Disabled by an administrator."
	default:
		if c.Verified {
			resp.StatusDescription = "Enabled."
		} else {
			resp.StatusDescription = "Enabled as an unverified app: users see a warning on the consent page until an administrator verifies it."
		}
	}
	return resp
}

// maxMetadata bounds a client metadata document.
const maxMetadata = 64 << 10

// requireJSON refuses a registration body that is not JSON (RFC 7591 §3.1).
func requireJSON(r *http.Request) error {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return problem.New(problem.InvalidRequest, "client registration takes a JSON document: send Content-Type: application/json (RFC 7591 section 3.1)")
	}
	return nil
}

// readBody reads a registration body, at most maxMetadata bytes.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxMetadata+1))
	if err != nil {
		return nil, problem.Wrap(problem.InvalidRequest, err, "the request body could not be read")
	}
	if len(body) > maxMetadata {
		return nil, problem.New(problem.RequestTooLarge, "client metadata is limited to 64 KiB")
	}
	return body, nil
}

// decodeMetadata decodes a JSON client metadata document (RFC 7591 §2).
func decodeMetadata(body []byte) (store.ClientMetadata, error) {
	var md store.ClientMetadata
	if err := json.Unmarshal(body, &md); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return md, problem.New(problem.InvalidClientMetadata, "field %s has the wrong JSON type: it must be %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()))
		}
		return md, problem.New(problem.InvalidClientMetadata, "the body is not a JSON object of client metadata (RFC 7591 section 2)")
	}
	return md, nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "slice":
		return "an array of strings"
	case "string":
		return "a string"
	}
	return "a different type"
}

// Register is POST /oauth2/register (RFC 7591).
func (s *Server) Register(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if ok, wait := s.registerLimiter.Allow(httpx.ClientIP(r)); !ok {
		w.Header().Set("Retry-After", httpx.RetryAfter(wait))
		return problem.New(problem.RateLimited, "too many registrations from this address; retry after %ss", httpx.RetryAfter(wait))
	}
	if s.live().Registration.Policy == "token" {
		tok, _ := bearer(r)
		ok := false
		if tok != "" {
			h := sha256.Sum256([]byte(tok))
			var err error
			ok, err = s.Store.CheckInitialAccessToken(ctx, h[:], s.Clock())
			if err != nil {
				return err
			}
		}
		if !ok {
			return problem.New(problem.InitialAccessTokenRequired, "this server requires an initial access token to register (registration.policy: token); send Authorization: Bearer <token> from an administrator (smartgate client initial-token)").
				WithHeader("WWW-Authenticate", `Bearer error="invalid_token"`)
		}
	}
	if err := requireJSON(r); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	md, err := decodeMetadata(body)
	if err != nil {
		return err
	}
	created, err := s.Clients.Create(ctx, md, Options{})
	if err != nil {
		s.audit(ctx, audit.Event{Actor: "address:" + httpx.ClientIP(r), Action: "client.register", Outcome: audit.Failure, Detail: detail("error", string(problem.From(err).ID))})
		return err
	}
	c := created.Client
	s.audit(ctx, audit.Event{Actor: "address:" + httpx.ClientIP(r), ClientID: c.ID, Action: "client.register", Outcome: audit.Success, Detail: detail("status", c.Status, "type", c.Type, "scope", c.Metadata.Scope)})
	w.Header().Set("Location", s.Issuer+"/oauth2/register/"+c.ID)
	return writeJSON(w, http.StatusCreated, s.registrationResponse(c, created.Secret, created.RegistrationToken))
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:]), true
	}
	return "", false
}

// registrationClient authorises an RFC 7592 request for the client in the
// path with the registration access token.
func (s *Server) registrationClient(r *http.Request) (*Client, error) {
	tok, _ := bearer(r)
	return s.Clients.CheckRegistrationToken(r.Context(), r.PathValue("client_id"), tok)
}

// RegistrationRead is GET /oauth2/register/{client_id} (RFC 7592 §2.1).
func (s *Server) RegistrationRead(w http.ResponseWriter, r *http.Request) error {
	c, err := s.registrationClient(r)
	if err != nil {
		return err
	}
	next, err := s.Clients.RotateRegistrationToken(r.Context(), c.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.registrationResponse(c, "", next))
}

// RegistrationUpdate is PUT /oauth2/register/{client_id} (RFC 7592 §2.2):
// the body replaces the metadata. Widening scopes, grant types or redirect
// URIs sends the client back through approval.
func (s *Server) RegistrationUpdate(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := r.PathValue("client_id")
	c, err := s.registrationClient(r)
	if err != nil {
		return err
	}
	var envelope struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	_ = json.Unmarshal(body, &envelope)
	if envelope.ClientID != id {
		return problem.New(problem.InvalidRequest, "the body's client_id must be %q (RFC 7592 section 2.2)", id)
	}
	if envelope.ClientSecret != "" && !secretMatches(envelope.ClientSecret, c.SecretHash) {
		return problem.New(problem.InvalidRequest, "client_secret in the body does not match the client's secret; leave it out or send the current one")
	}
	if err := requireJSON(r); err != nil {
		return err
	}
	md, err := decodeMetadata(body)
	if err != nil {
		return err
	}
	updated, widened, err := s.Clients.Update(ctx, id, md, false)
	if err != nil {
		return err
	}
	s.audit(ctx, audit.Event{Actor: "client:" + id, ClientID: id, Action: "client.update", Outcome: audit.Success, Detail: detail("status", updated.Status, "widened", boolText(widened))})
	next, err := s.Clients.RotateRegistrationToken(ctx, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.registrationResponse(updated, "", next))
}

// RegistrationDelete is DELETE /oauth2/register/{client_id} (RFC 7592 §2.3).
func (s *Server) RegistrationDelete(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := r.PathValue("client_id")
	if _, err := s.registrationClient(r); err != nil {
		return err
	}
	if err := s.Clients.Delete(ctx, id); err != nil {
		return err
	}
	s.audit(ctx, audit.Event{Actor: "client:" + id, ClientID: id, Action: "client.delete", Outcome: audit.Success})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
