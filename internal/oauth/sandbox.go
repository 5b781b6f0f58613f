package oauth

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"smartgate/internal/problem"
	"smartgate/internal/requestid"
)

// Sandbox is the error injection of `serve --sandbox` (docs/portal.md "The
// sandbox"): a developer chooses an error one client gets on its next
// request of a kind, to test how the app handles it. Each injection fires
// once and is gone; then the client gets normal answers again. Injections
// live in the memory of the node (a sandbox is one dev node) and are lost
// on restart.
//
// A nil *Sandbox injects nothing: every hook below is a no-op unless the
// server runs in sandbox mode.
type Sandbox struct {
	clock func() time.Time

	mu      sync.Mutex
	pending map[string][]Injection // by client id, in the order injected
	fired   []Injection            // newest first, at most maxFired
}

// Injection is one chosen error for one client.
type Injection struct {
	ClientID  string
	Kind      InjectKind
	Created   time.Time
	Fired     time.Time // zero while pending
	RequestID string    // the request that got it
}

// InjectKind names an error the sandbox can inject.
type InjectKind string

// The errors the sandbox injects, by where they fire.
const (
	InjectAuthorizeInvalidRequest InjectKind = "authorize_invalid_request"
	InjectAuthorizeAccessDenied   InjectKind = "authorize_access_denied"
	InjectAuthorizeInvalidScope   InjectKind = "authorize_invalid_scope"
	InjectAuthorizeServerError    InjectKind = "authorize_server_error"
	InjectAuthorizeUnavailable    InjectKind = "authorize_temporarily_unavailable"
	InjectTokenInvalidClient      InjectKind = "token_invalid_client"
	InjectTokenWrongSecret        InjectKind = "token_wrong_secret"
	InjectTokenBadJTI             InjectKind = "token_bad_jti"
	InjectTokenInvalidScope       InjectKind = "token_invalid_scope"
	InjectTokenExpiredRefresh     InjectKind = "token_expired_refresh_token"
	InjectFHIRExpiredToken        InjectKind = "fhir_expired_access_token"
)

// InjectKindInfo describes a kind for the sandbox page and its checks.
type InjectKindInfo struct {
	Kind   InjectKind
	Where  string // the endpoint that answers with it
	When   string // which request of the client gets it
	Answer string // what the app receives
	// fits says why the kind cannot fire for a client ("" when it can).
	fits func(c *Client) string
}

func needsGrant(g string) func(c *Client) string {
	return func(c *Client) string {
		if !slices.Contains(c.Metadata.GrantTypes, g) {
			return "client " + c.ID + " did not register the " + g + " grant, so it never makes that request"
		}
		return ""
	}
}

func needsAuthMethod(methods ...string) func(c *Client) string {
	return func(c *Client) string {
		if !slices.Contains(methods, c.Metadata.TokenEndpointAuthMethod) {
			return "client " + c.ID + " authenticates with " + c.Metadata.TokenEndpointAuthMethod + ", not " + joinWords(methods)
		}
		return ""
	}
}

func anyClient(*Client) string { return "" }

// InjectKinds lists every kind, in the order the sandbox page shows them.
var InjectKinds = []InjectKindInfo{
	{InjectAuthorizeInvalidRequest, "/oauth2/authorize", "the next authorization request", "a redirect to the app's redirect_uri with error=invalid_request, error_description, error_uri, state and iss", needsGrant("authorization_code")},
	{InjectAuthorizeAccessDenied, "/oauth2/authorize", "the next authorization request", "a redirect with error=access_denied, as when the user clicks Deny", needsGrant("authorization_code")},
	{InjectAuthorizeInvalidScope, "/oauth2/authorize", "the next authorization request", "a redirect with error=invalid_scope", needsGrant("authorization_code")},
	{InjectAuthorizeServerError, "/oauth2/authorize", "the next authorization request", "a redirect with error=server_error", needsGrant("authorization_code")},
	{InjectAuthorizeUnavailable, "/oauth2/authorize", "the next authorization request", "a redirect with error=temporarily_unavailable", needsGrant("authorization_code")},
	{InjectTokenInvalidClient, "/oauth2/token", "the next token request", "HTTP 401, error=invalid_client, with WWW-Authenticate", anyClient},
	{InjectTokenWrongSecret, "/oauth2/token", "the next token request authenticated with the client secret", "HTTP 401, error=invalid_client: the client secret is wrong", needsAuthMethod("client_secret_basic", "client_secret_post")},
	{InjectTokenBadJTI, "/oauth2/token", "the next token request authenticated with a client assertion", "HTTP 401, error=invalid_client: the assertion's jti was already used (a replay)", needsAuthMethod("private_key_jwt")},
	{InjectTokenInvalidScope, "/oauth2/token", "the next client_credentials, refresh_token or password request", "HTTP 400, error=invalid_scope", anyClient},
	{InjectTokenExpiredRefresh, "/oauth2/token", "the next refresh_token request", "HTTP 400, error=invalid_grant: the refresh token expired (the token itself stays valid)", needsGrant("refresh_token")},
	{InjectFHIRExpiredToken, "/fhir", "the next FHIR request with an access token of the client", "HTTP 401 with WWW-Authenticate: Bearer error=\"invalid_token\", the token is expired (it stays valid)", anyClient},
}

// KindInfo returns the description of k.
func KindInfo(k InjectKind) (InjectKindInfo, bool) {
	for _, in := range InjectKinds {
		if in.Kind == k {
			return in, true
		}
	}
	return InjectKindInfo{}, false
}

// maxFired bounds the history the sandbox page shows.
const maxFired = 20

// sandboxNote ends every injected error's description, so that an app's
// log says where the error came from.
const sandboxNote = " [sandbox: injected error; the next request gets the normal answer]"

// NewSandbox returns an empty sandbox.
func NewSandbox(clock func() time.Time) *Sandbox {
	if clock == nil {
		clock = time.Now
	}
	return &Sandbox{clock: clock, pending: map[string][]Injection{}}
}

// Inject arms kind for client c (once; arming a pending kind again
// changes nothing). It refuses a kind the client can never trigger.
func (sb *Sandbox) Inject(c *Client, kind InjectKind) error {
	info, ok := KindInfo(kind)
	if !ok {
		return problem.New(problem.InvalidRequest, "%q is not an error the sandbox can inject; choose one of the listed kinds", kind)
	}
	if why := info.fits(c); why != "" {
		return problem.New(problem.InvalidRequest, "%s cannot be injected for this client: %s", kind, why)
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	for _, in := range sb.pending[c.ID] {
		if in.Kind == kind {
			return nil
		}
	}
	sb.pending[c.ID] = append(sb.pending[c.ID], Injection{ClientID: c.ID, Kind: kind, Created: sb.clock().UTC()})
	return nil
}

// Cancel disarms a pending injection.
func (sb *Sandbox) Cancel(clientID string, kind InjectKind) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	list := slices.DeleteFunc(sb.pending[clientID], func(in Injection) bool { return in.Kind == kind })
	if len(list) == 0 {
		delete(sb.pending, clientID)
		return
	}
	sb.pending[clientID] = list
}

// Pending lists the armed injections by client, then in the order armed.
func (sb *Sandbox) Pending() []Injection {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	var out []Injection
	for _, list := range sb.pending {
		out = append(out, list...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].ClientID != out[j].ClientID {
			return out[i].ClientID < out[j].ClientID
		}
		return out[i].Created.Before(out[j].Created)
	})
	return out
}

// Fired lists the injections that fired, newest first.
func (sb *Sandbox) Fired() []Injection {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return slices.Clone(sb.fired)
}

// take fires the client's first pending injection whose kind is in kinds.
func (sb *Sandbox) take(clientID, requestID string, kinds ...InjectKind) (InjectKind, bool) {
	if sb == nil {
		return "", false
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	list := sb.pending[clientID]
	for i, in := range list {
		if !slices.Contains(kinds, in.Kind) {
			continue
		}
		sb.pending[clientID] = slices.Delete(list, i, i+1)
		if len(sb.pending[clientID]) == 0 {
			delete(sb.pending, clientID)
		}
		in.Fired, in.RequestID = sb.clock().UTC(), requestID
		sb.fired = append([]Injection{in}, sb.fired...)
		if len(sb.fired) > maxFired {
			sb.fired = sb.fired[:maxFired]
		}
		return in.Kind, true
	}
	return "", false
}

// TakeExpiredToken is the FHIR API's hook (fhir.SandboxErrors).
func (sb *Sandbox) TakeExpiredToken(clientID, requestID string) bool {
	_, ok := sb.take(clientID, requestID, InjectFHIRExpiredToken)
	return ok
}

// sandboxAuthorizeError is the authorization endpoint's sandbox hook: the
// injected redirect error for a request already validated (so it goes back
// to the app like a real one, RFC 6749 §4.1.2.1). nil outside sandbox mode.
func (s *Server) sandboxAuthorizeError(r *http.Request, c *Client, p *pending) error {
	kind, ok := s.Sandbox.take(c.ID, requestid.From(r.Context()), InjectAuthorizeInvalidRequest, InjectAuthorizeAccessDenied,
		InjectAuthorizeInvalidScope, InjectAuthorizeServerError, InjectAuthorizeUnavailable)
	if !ok {
		return nil
	}
	var e *problem.Error
	switch kind {
	case InjectAuthorizeInvalidRequest:
		e = problem.New(problem.InvalidRequest, "state is missing; send a random, unguessable state and check it when the browser comes back"+sandboxNote)
	case InjectAuthorizeAccessDenied:
		e = problem.New(problem.AccessDenied, "the user declined to authorize %s%s", clientName(c), sandboxNote)
	case InjectAuthorizeInvalidScope:
		e = problem.New(problem.InvalidScope, "no scope left to grant: the requested scopes are not registered for this client%s", sandboxNote)
	case InjectAuthorizeServerError:
		e = problem.New(problem.InternalError, "the server failed while handling the authorization request; try again"+sandboxNote)
	default:
		e = problem.New(problem.NotReady, "the server is temporarily unable to handle the authorization request; try again in a moment"+sandboxNote)
	}
	return &authzError{err: e, redirectURI: p.RedirectURI, state: p.State}
}

// sandboxTokenError is the token endpoint's sandbox hook, run after the
// client authenticated: the injected error this request gets, worded as
// the real one. nil outside sandbox mode or with nothing armed.
func (s *Server) sandboxTokenError(r *http.Request, c *Client, form url.Values) error {
	if s.Sandbox == nil {
		return nil
	}
	kinds := []InjectKind{InjectTokenInvalidClient}
	_, _, basic := r.BasicAuth()
	if basic || form.Get("client_secret") != "" {
		kinds = append(kinds, InjectTokenWrongSecret)
	}
	if form.Get("client_assertion") != "" {
		kinds = append(kinds, InjectTokenBadJTI)
	}
	switch form.Get("grant_type") {
	case "refresh_token":
		kinds = append(kinds, InjectTokenExpiredRefresh, InjectTokenInvalidScope)
	case "client_credentials", "password":
		kinds = append(kinds, InjectTokenInvalidScope)
	}
	kind, ok := s.Sandbox.take(c.ID, requestid.From(r.Context()), kinds...)
	if !ok {
		return nil
	}
	switch kind {
	case InjectTokenInvalidClient:
		return invalidClient("client %s could not be authenticated%s", c.ID, sandboxNote)
	case InjectTokenWrongSecret:
		return invalidClient("the client secret for %s is wrong; use the secret issued at registration or after the last rotate-secret%s", c.ID, sandboxNote)
	case InjectTokenBadJTI:
		return badAssertion("the assertion's jti %q was already used; every assertion needs a new jti (replay refused)%s", assertionJTI(form.Get("client_assertion")), sandboxNote)
	case InjectTokenExpiredRefresh:
		return problem.New(problem.InvalidGrant, "the refresh token or its grant expired; the user must authorize the app again%s", sandboxNote)
	default:
		requested := form.Get("scope")
		if requested == "" {
			requested = "(the registered scopes)"
		}
		return problem.New(problem.InvalidScope, "no scope left to grant: %s is not allowed for client %s%s", requested, c.ID, sandboxNote)
	}
}

// assertionJTI reads the jti of an assertion that already verified.
func assertionJTI(raw string) string {
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA})
	if err != nil {
		return ""
	}
	var c struct {
		JTI string `json:"jti"`
	}
	_ = json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c)
	return c.JTI
}
