package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// AssertionType is the client_assertion_type of private_key_jwt (RFC 7523 §2.2).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// authenticate identifies and authenticates the client of a token,
// introspection or revocation request (RFC 6749 §2.3, RFC 7523 §2.2). It
// accepts exactly one method, the one the client registered.
func (s *Server) authenticate(ctx context.Context, r *http.Request, form url.Values) (*Client, error) {
	basicID, basicSecret, hasBasic := r.BasicAuth()
	if hasBasic {
		// RFC 6749 §2.3.1: the credentials are form-urlencoded before Basic encoding.
		if id, err := url.QueryUnescape(basicID); err == nil {
			basicID = id
		}
		if sec, err := url.QueryUnescape(basicSecret); err == nil {
			basicSecret = sec
		}
	}
	assertion, assertionType := form.Get("client_assertion"), form.Get("client_assertion_type")
	postSecret := form.Get("client_secret")
	formID := form.Get("client_id")

	methods := 0
	for _, used := range []bool{hasBasic, assertion != "" || assertionType != "", postSecret != ""} {
		if used {
			methods++
		}
	}
	if methods > 1 {
		return nil, invalidClient("the request authenticates the client in more than one way (Authorization header, client_secret, client_assertion); use exactly one (RFC 6749 section 2.3)")
	}

	var method, id string
	switch {
	case hasBasic:
		method, id = "client_secret_basic", basicID
		if formID != "" && formID != basicID {
			return nil, invalidClient("client_id in the body (%q) differs from the one in the Authorization header", formID)
		}
	case assertion != "" || assertionType != "":
		if assertionType != AssertionType {
			return nil, problem.New(problem.ClientAssertionInvalid, "client_assertion_type must be %s, not %q", AssertionType, assertionType).WithHeader("WWW-Authenticate", `Basic realm="smartgate"`)
		}
		if assertion == "" {
			return nil, problem.New(problem.ClientAssertionInvalid, "client_assertion is missing: send the signed JWT").WithHeader("WWW-Authenticate", `Basic realm="smartgate"`)
		}
		return s.authenticateAssertion(ctx, assertion, formID)
	case postSecret != "":
		method, id = "client_secret_post", formID
	default:
		method, id = "none", formID
	}
	if id == "" {
		return nil, invalidClient("no client identified: send client_id (public clients), HTTP Basic credentials (client_secret_basic), client_id and client_secret (client_secret_post), or a client_assertion (private_key_jwt)")
	}
	c, err := s.Clients.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		secretMatches(basicSecret+postSecret, nil)
		return nil, invalidClient("client %q is not registered here; register it first (POST /oauth2/register or smartgate client create)", id)
	}
	if err != nil {
		return nil, err
	}
	if c.Metadata.TokenEndpointAuthMethod != method {
		return nil, invalidClient("client %s registered token_endpoint_auth_method %s but authenticated with %s; %s", c.ID, c.Metadata.TokenEndpointAuthMethod, method, howTo(c.Metadata.TokenEndpointAuthMethod))
	}
	switch method {
	case "client_secret_basic", "client_secret_post":
		secret := basicSecret
		if method == "client_secret_post" {
			secret = postSecret
		}
		if !secretMatches(secret, c.SecretHash) {
			return nil, invalidClient("the client secret for %s is wrong; use the secret issued at registration or after the last rotate-secret", c.ID)
		}
		if !c.SecretExpiresAt.IsZero() && !s.Clock().Before(c.SecretExpiresAt) {
			return nil, invalidClient("the client secret for %s expired; an administrator issues a new one with: smartgate client rotate-secret %s", c.ID, c.ID)
		}
	}
	if err := statusError(c); err != nil {
		return nil, err
	}
	return c, nil
}

func howTo(method string) string {
	switch method {
	case "client_secret_basic":
		return "send the client_id and secret in an HTTP Basic Authorization header"
	case "client_secret_post":
		return "send client_id and client_secret as form fields"
	case "private_key_jwt":
		return "send a signed client_assertion with client_assertion_type=" + AssertionType
	default:
		return "send only client_id (a public client has no secret)"
	}
}

func invalidClient(format string, args ...any) *problem.Error {
	return problem.New(problem.InvalidClient, format, args...).WithHeader("WWW-Authenticate", `Basic realm="smartgate"`)
}
