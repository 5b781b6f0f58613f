package e2e

import (
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	_ "modernc.org/sqlite" // registers "sqlite", to read the audit trail

	"smartgate/internal/store/sqlstore"
)

// headerRecorder is a RoundTripper that remembers the last response's
// status and headers, which golang.org/x/oauth2 does not expose.
type headerRecorder struct {
	mu     sync.Mutex
	status int
	header http.Header
}

func (h *headerRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		h.mu.Lock()
		h.status, h.header = resp.StatusCode, resp.Header.Clone()
		h.mu.Unlock()
	}
	return resp, err
}

func (h *headerRecorder) last() (int, http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status, h.header
}

// TestClientSecretWithXOAuth2 drives the token, introspection and
// revocation endpoints with golang.org/x/oauth2/clientcredentials, the Go
// ecosystem's standard client, against clients made with the CLI; then
// checks the audit trail those requests left.
func TestClientSecretWithXOAuth2(t *testing.T) {
	t.Parallel()
	s := startDev(t)
	const registered = "system/Patient.rs system/Observation.rs"
	basic := s.createClient(t, "basic", "--type", "confidential-symmetric", "--scope", registered)
	post := s.createClient(t, "post", "--type", "confidential-symmetric", "--scope", registered, "--auth-method", "client_secret_post")
	rs := s.createClient(t, "resource server", "--type", "confidential-symmetric", "--scope", "system/Patient.rs", "--introspect-any")
	for _, c := range []cliClient{basic, post, rs} {
		if c.ClientSecret == "" {
			t.Fatalf("client create printed no client_secret for confidential-symmetric client %s", c.ClientID)
		}
	}
	basicCreds := creds{id: basic.ClientID, secret: basic.ClientSecret}
	postCreds := creds{id: post.ClientID, secret: post.ClientSecret, post: true}
	rsCreds := creds{id: rs.ClientID, secret: rs.ClientSecret}

	rec := &headerRecorder{}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: rec, Timeout: 10 * time.Second})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	config := func(c cliClient, style oauth2.AuthStyle, scopes ...string) *clientcredentials.Config {
		return &clientcredentials.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, TokenURL: s.tokenURL(), Scopes: scopes, AuthStyle: style}
	}

	tokens := map[string]*oauth2.Token{}
	for _, tc := range []struct {
		name   string
		client cliClient
		style  oauth2.AuthStyle
	}{
		{"client_secret_basic", basic, oauth2.AuthStyleInHeader},
		{"client_secret_post", post, oauth2.AuthStyleInParams},
	} {
		// A registered and an unregistered scope: only the registered one is granted.
		before := time.Now()
		tok, err := config(tc.client, tc.style, "system/Patient.rs", "system/Condition.rs").Token(ctx)
		if err != nil {
			t.Fatalf("%s: token request: %v", tc.name, err)
		}
		tokens[tc.name] = tok
		if got := tok.Extra("scope"); got != "system/Patient.rs" {
			t.Errorf("%s: granted scope %v, want system/Patient.rs (system/Condition.rs is not registered)", tc.name, got)
		}
		// clientcredentials drops Token.ExpiresIn; the raw field is in Extra.
		if tok.TokenType != "Bearer" || tok.Extra("expires_in") != float64(300) {
			t.Errorf("%s: token_type %q expires_in %v, want Bearer and 300", tc.name, tok.TokenType, tok.Extra("expires_in"))
		}
		if d := tok.Expiry.Sub(before); d < 295*time.Second || d > 305*time.Second {
			t.Errorf("%s: token expires %s after the request, want about 5 minutes", tc.name, d)
		}
		status, h := rec.last()
		if status != http.StatusOK || h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
			t.Errorf("%s: token response %d with Cache-Control %q Pragma %q; want 200, no-store, no-cache (RFC 6749 section 5.1)", tc.name, status, h.Get("Cache-Control"), h.Get("Pragma"))
		}
		if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: token response Content-Type %q", tc.name, ct)
		}

		// Only unregistered scopes: invalid_scope naming the scope and why.
		_, err = config(tc.client, tc.style, "system/Condition.rs").Token(ctx)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) {
			t.Fatalf("%s: only an unregistered scope: want an OAuth error, got %v", tc.name, err)
		}
		if re.Response.StatusCode != http.StatusBadRequest || re.ErrorCode != "invalid_scope" ||
			!containsAll(re.ErrorDescription, "system/Condition.rs", "not registered") {
			t.Errorf("%s: only an unregistered scope: want 400 invalid_scope naming system/Condition.rs and 'not registered', got %d %q %q",
				tc.name, re.Response.StatusCode, re.ErrorCode, re.ErrorDescription)
		}
	}

	// The wrong authentication method for the client is refused, naming the registered one.
	_, err := config(basic, oauth2.AuthStyleInParams, "system/Patient.rs").Token(ctx)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response.StatusCode != http.StatusUnauthorized || re.ErrorCode != "invalid_client" ||
		!strings.Contains(re.ErrorDescription, "client_secret_basic") || re.Response.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("basic client authenticating with client_secret_post: want 401 invalid_client naming client_secret_basic with WWW-Authenticate, got %v", err)
	}
	// A wrong secret.
	_, err = (&clientcredentials.Config{ClientID: basic.ClientID, ClientSecret: "wrong", TokenURL: s.tokenURL(), AuthStyle: oauth2.AuthStyleInHeader}).Token(ctx)
	if !errors.As(err, &re) || re.Response.StatusCode != http.StatusUnauthorized || re.ErrorCode != "invalid_client" || !strings.Contains(re.ErrorDescription, "secret") {
		t.Errorf("wrong secret: want 401 invalid_client about the secret, got %v", err)
	}

	// Malformed requests explain themselves.
	r := do(t, http.MethodPost, s.tokenURL(), strings.NewReader(`{"grant_type":"client_credentials"}`),
		http.Header{"Content-Type": {"application/json"}, "Authorization": {"Basic " + basicAuth(basic.ClientID, basic.ClientSecret)}})
	wantOAuthError(t, "JSON token request", r, http.StatusBadRequest, "invalid_request", "Content-Type", "application/x-www-form-urlencoded")
	r = do(t, http.MethodPost, s.tokenURL(), strings.NewReader("grant_type=client_credentials&grant_type=client_credentials"),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Authorization": {"Basic " + basicAuth(basic.ClientID, basic.ClientSecret)}})
	wantOAuthError(t, "repeated grant_type", r, http.StatusBadRequest, "invalid_request", "grant_type")
	r = postForm(t, s.tokenURL()+"?client_secret="+basic.ClientSecret, url.Values{"grant_type": {"client_credentials"}}, creds{id: basic.ClientID})
	wantOAuthError(t, "client_secret in the query", r, http.StatusBadRequest, "invalid_request", "client_secret", "query")
	r = postForm(t, s.tokenURL(), url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}}, basicCreds)
	wantOAuthError(t, "unsupported grant", r, http.StatusBadRequest, "unsupported_grant_type", "device_code", "client_credentials")
	r = postForm(t, s.tokenURL(), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, basicCreds)
	wantOAuthError(t, "grant the client did not register", r, http.StatusBadRequest, "unauthorized_client", "refresh_token", "smartgate client update")
	// Introspection needs client authentication.
	r = postForm(t, s.URL+"/oauth2/introspect", url.Values{"token": {"x"}}, creds{})
	wantOAuthError(t, "introspection without client authentication", r, http.StatusUnauthorized, "invalid_client", "client_id")

	// Introspection by the owner shows the RFC 7662 fields.
	tok := tokens["client_secret_basic"].AccessToken
	m := wantActive(t, s.URL, basicCreds, tok, "system/Patient.rs", basic.ClientID)
	if m["iss"] != s.URL || m["aud"] != s.URL+"/fhir" || m["sub"] != basic.ClientID {
		t.Errorf("introspection: iss %v aud %v sub %v; want %s, %s/fhir, %s", m["iss"], m["aud"], m["sub"], s.URL, s.URL, basic.ClientID)
	}
	exp, _ := m["exp"].(float64)
	iat, _ := m["iat"].(float64)
	if exp-iat != 300 || iat < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("introspection: iat %v exp %v; want a recent iat and exp = iat + 300", iat, exp)
	}
	// Another client learns nothing about it; a resource server does.
	if raw, _ := introspect(t, s.URL, postCreds, tok); raw != `{"active":false}` {
		t.Errorf("introspection by another client (not introspect-any): want exactly {\"active\":false}, got %s", raw)
	}
	wantActive(t, s.URL, rsCreds, tok, "system/Patient.rs", basic.ClientID)
	// Garbage is inactive, not an error.
	if raw, _ := introspect(t, s.URL, rsCreds, "not-a-token"); raw != `{"active":false}` {
		t.Errorf("introspecting garbage: got %s", raw)
	}

	// Only the owner may revoke (RFC 7009 section 2.1).
	r = postForm(t, s.URL+"/oauth2/revoke", url.Values{"token": {tok}}, postCreds)
	wantOAuthError(t, "revoking another client's token", r, http.StatusBadRequest, "unauthorized_client", "another client")
	wantActive(t, s.URL, rsCreds, tok, "system/Patient.rs", basic.ClientID)
	// The owner revokes it: 200, and it is dead everywhere within the bound.
	r = postForm(t, s.URL+"/oauth2/revoke", url.Values{"token": {tok}, "token_type_hint": {"access_token"}}, basicCreds)
	if r.status != http.StatusOK {
		t.Fatalf("revocation: want 200, got %s", r)
	}
	waitInactive(t, s.URL, rsCreds, tok, "revoked token inactive for the resource server")
	waitInactive(t, s.URL, basicCreds, tok, "revoked token inactive for its owner")
	// The other client's token is untouched.
	wantActive(t, s.URL, postCreds, tokens["client_secret_post"].AccessToken, "system/Patient.rs", post.ClientID)
	// An unknown token: 200 (RFC 7009 section 2.2).
	for _, unknown := range []string{"no-such-token", strings.Repeat("x", 150), tok + "x"} {
		if r := postForm(t, s.URL+"/oauth2/revoke", url.Values{"token": {unknown}}, basicCreds); r.status != http.StatusOK {
			t.Errorf("revoking an unknown token: want 200, got %s", r)
		}
	}
	// A missing token is a malformed request.
	r = postForm(t, s.URL+"/oauth2/revoke", url.Values{}, basicCreds)
	wantOAuthError(t, "revocation without token", r, http.StatusBadRequest, "invalid_request", "token")

	// Disabling the client with the CLI kills its tokens and its access.
	live, err := config(basic, oauth2.AuthStyleInHeader).Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if live.Extra("scope") != registered {
		t.Errorf("no scope requested: granted %v, want every registered scope %q", live.Extra("scope"), registered)
	}
	wantActive(t, s.URL, rsCreds, live.AccessToken, registered, basic.ClientID)
	s.clientAct(t, "disable", basic.ClientID)
	waitInactive(t, s.URL, rsCreds, live.AccessToken, "token of a disabled client inactive")
	waitFor(t, revocationWait, "token request of a disabled client refused", func() (bool, string) {
		r := clientCredentials(t, s.URL, basicCreds, "")
		return r.status == http.StatusUnauthorized, r.String()
	})
	r = clientCredentials(t, s.URL, basicCreds, "")
	wantOAuthError(t, "token request of a disabled client", r, http.StatusUnauthorized, "invalid_client", "disabled", "smartgate client enable "+basic.ClientID)

	// Enabling it again lets it get tokens; the old token stays dead.
	s.clientAct(t, "enable", basic.ClientID)
	waitFor(t, revocationWait, "token request of a re-enabled client accepted", func() (bool, string) {
		r := clientCredentials(t, s.URL, basicCreds, "")
		return r.status == http.StatusOK, r.String()
	})
	if raw, _ := introspect(t, s.URL, rsCreds, live.AccessToken); raw != `{"active":false}` {
		t.Errorf("a token revoked by disabling came back to life after enable: %s", raw)
	}

	// A registration over HTTP, for the audit trail.
	reg := register(t, s.URL, "", map[string]any{
		"client_name": "audit app", "token_endpoint_auth_method": "none",
		"redirect_uris": []string{"https://app.example.com/cb"}, "scope": "launch/patient openid fhirUser patient/*.rs",
	})
	if reg.status != http.StatusCreated {
		t.Fatalf("registration: %s", reg)
	}
	var created map[string]any
	reg.json(t, &created)
	regID, _ := created["client_id"].(string)

	// The audit trail has every act with its client id, and no secret.
	events := waitAudit(t, s, func(evs []auditEvent) (bool, string) {
		want := []struct{ action, client string }{
			{"token.issue", basic.ClientID}, {"token.issue", post.ClientID},
			{"token.refuse", basic.ClientID}, {"token.revoke", basic.ClientID},
			{"client.disable", basic.ClientID}, {"client.enable", basic.ClientID},
			{"client.register", regID}, {"client.create", rs.ClientID},
		}
		for _, w := range want {
			if !hasEvent(evs, w.action, w.client) {
				return false, fmt.Sprintf("no %s event for client %s among %d events", w.action, w.client, len(evs))
			}
		}
		return true, ""
	})
	for _, e := range events {
		for _, secret := range []string{basic.ClientSecret, post.ClientSecret, rs.ClientSecret, tok, live.AccessToken} {
			if strings.Contains(e.Detail, secret) || strings.Contains(e.Actor, secret) {
				t.Errorf("audit event %s holds a secret or token: %+v", e.Action, e)
			}
		}
	}
	// The refusal of the disabled client (HTTP Basic) should name it too.
	refusedDisabled := false
	for _, e := range events {
		if e.Action == "token.refuse" && e.ClientID == basic.ClientID && strings.Contains(e.Detail, "client_disabled") {
			refusedDisabled = true
		}
	}
	if !refusedDisabled {
		knownBug(t, "internal/oauth/token.go Token(): a token.refuse audit event for a client that authenticated with HTTP Basic "+
			"(or with a client_assertion and no client_id field) records client_id %q (from the form), not the client's id; "+
			"the refusal of disabled client %s is not attributable to it", "", basic.ClientID)
	}
}

// auditEvent is one row of audit_events.
type auditEvent struct {
	At                                        int64
	Actor, ClientID, Patient, Action, Outcome string
	Detail                                    string
}

func hasEvent(evs []auditEvent, action, clientID string) bool {
	for _, e := range evs {
		if e.Action == action && e.ClientID == clientID {
			return true
		}
	}
	return false
}

// readAudit reads audit_events from a dev server's audit file, read-only.
func readAudit(t *testing.T, s *devServer) ([]auditEvent, error) {
	t.Helper()
	return readAuditDir(s.dataDir)
}

// readAuditDir reads audit_events from the audit file of the SQLite
// database in a data dir, read-only.
func readAuditDir(dataDir string) ([]auditEvent, error) {
	path := sqlstore.AuditFile(filepath.Join(dataDir, "smartgate.db"))
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.Query("SELECT at, actor, client_id, patient, action, outcome, detail FROM audit_events ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []auditEvent
	for rows.Next() {
		var e auditEvent
		if err := rows.Scan(&e.At, &e.Actor, &e.ClientID, &e.Patient, &e.Action, &e.Outcome, &e.Detail); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// auditOf returns the events of one action in the audit trail of the
// SQLite database in dataDir, oldest first.
func auditOf(t *testing.T, dataDir, action string) []auditEvent {
	t.Helper()
	evs, err := readAuditDir(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []auditEvent
	for _, e := range evs {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// waitAudit waits until the audit trail satisfies cond (events are written
// in batches, every flush interval) and returns it.
func waitAudit(t *testing.T, s *devServer, cond func([]auditEvent) (bool, string)) []auditEvent {
	t.Helper()
	var evs []auditEvent
	waitFor(t, 5*time.Second, "audit events", func() (bool, string) {
		var err error
		evs, err = readAudit(t, s)
		if err != nil {
			return false, err.Error()
		}
		return cond(evs)
	})
	return evs
}

// TestPrivateKeyJWT drives SMART Backend Services authentication
// (private_key_jwt, RFC 7523) with assertions signed by go-jose: RS384 with
// keys registered inline, ES384 with keys at a jwks_uri (cached), and every
// assertion defect (TestJWKSURIRotation covers key rotation).
func TestPrivateKeyJWT(t *testing.T) {
	t.Parallel()
	s := startDev(t)
	rsKey := newRSAKey(t, "rs-1", jose.RS384)
	ecKey := newECKey(t, "es-1")
	js := newJWKSServer(t, ecKey)
	jwksURI := js.URL + "/.well-known/jwks.json"

	inline := s.createClient(t, "inline keys", "--type", "confidential-asymmetric",
		"--jwks-file", writeJWKSFile(t, rsKey), "--scope", "system/Patient.rs system/Observation.rs")
	remote := s.createClient(t, "remote keys", "--type", "confidential-asymmetric",
		"--jwks-uri", jwksURI, "--scope", "system/*.rs")
	rsc := s.createClient(t, "resource server", "--type", "confidential-symmetric", "--scope", "system/Patient.rs", "--introspect-any")
	rsCreds := creds{id: rsc.ClientID, secret: rsc.ClientSecret}

	// RS384 with inline keys; ES384 with a jwks_uri.
	inlineCreds := assertCreds(t, inline.ClientID, s.tokenURL(), rsKey)
	remoteCreds := assertCreds(t, remote.ClientID, s.tokenURL(), ecKey)
	tr := mustToken(t, s.URL, inlineCreds, "system/Patient.rs system/Encounter.rs")
	if tr.Scope != "system/Patient.rs" || tr.ExpiresIn != 300 {
		t.Errorf("RS384 client: scope %q expires_in %d; want system/Patient.rs and 300", tr.Scope, tr.ExpiresIn)
	}
	wantActive(t, s.URL, rsCreds, tr.AccessToken, "system/Patient.rs", inline.ClientID)
	// The client introspects its own token, authenticating by assertion.
	wantActive(t, s.URL, inlineCreds, tr.AccessToken, "system/Patient.rs", inline.ClientID)
	tr = mustToken(t, s.URL, remoteCreds, "system/Observation.rs")
	if tr.Scope != "system/Observation.rs" {
		t.Errorf("ES384 client: scope %q, want system/Observation.rs", tr.Scope)
	}
	wantActive(t, s.URL, rsCreds, tr.AccessToken, "system/Observation.rs", remote.ClientID)
	if n := js.hits.Load(); n != 1 {
		t.Errorf("the jwks_uri was fetched %d times for the first token, want 1", n)
	}
	// The cached set serves the next request.
	mustToken(t, s.URL, remoteCreds, "system/Patient.rs")
	if n := js.hits.Load(); n != 1 {
		t.Errorf("the jwks_uri was fetched %d times for two tokens, want 1 (cached)", n)
	}
	// The same client_id in the form is fine.
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {inline.ClientID}}
	if r := postForm(t, s.tokenURL(), form, inlineCreds); r.status != http.StatusOK {
		t.Errorf("assertion with a matching client_id field: %s", r)
	}

	// Assertion defects: each is 401 invalid_client naming the rule.
	otherRSA := newRSAKey(t, "rs-1", jose.RS384) // same kid, unregistered key
	unknownKid := newRSAKey(t, "rs-unknown", jose.RS384)
	pubDER, err := x509.MarshalPKIXPublicKey(rsKey.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	valid := func() map[string]any { return assertionClaims(inline.ClientID, s.tokenURL()) }
	with := func(k string, v any) map[string]any { c := valid(); c[k] = v; return c }
	without := func(k string) map[string]any { c := valid(); delete(c, k); return c }
	reused := rsKey.sign(t, valid(), nil)
	if r := withAssertion(t, s.URL, reused, assertionType, ""); r.status != http.StatusOK {
		t.Fatalf("first use of an assertion: %s", r)
	}
	// sign signs the valid claims with a raw signing key and options.
	signWith := func(key jose.SigningKey, opts *jose.SignerOptions) string {
		signer, err := jose.NewSigner(key, opts)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(valid())
		if err != nil {
			t.Fatal(err)
		}
		jws, err := signer.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		out, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// The classic algorithm confusion: HMAC keyed with the public key.
	hs256 := signWith(jose.SigningKey{Algorithm: jose.HS256, Key: pubPEM}, (&jose.SignerOptions{}).WithHeader("kid", "rs-1"))
	embedded := signWith(jose.SigningKey{Algorithm: jose.RS384, Key: rsKey.priv}, &jose.SignerOptions{EmbedJWK: true})
	now := time.Now()
	cases := []struct {
		name      string
		assertion string
		typ       string
		form      url.Values
		words     []string
	}{
		{name: "expired", assertion: rsKey.sign(t, with("exp", now.Add(-2*time.Minute).Unix()), nil), words: []string{"expired"}},
		{name: "exp 10 minutes ahead", assertion: rsKey.sign(t, with("exp", now.Add(10*time.Minute).Unix()), nil), words: []string{"exp", "ahead", "at most"}},
		{name: "no exp", assertion: rsKey.sign(t, without("exp"), nil), words: []string{"exp"}},
		{name: "aud is the issuer", assertion: rsKey.sign(t, with("aud", s.URL), nil), words: []string{"aud", s.tokenURL()}},
		{name: "aud with a trailing slash", assertion: rsKey.sign(t, with("aud", s.tokenURL()+"/"), nil), words: []string{"aud", s.tokenURL()}},
		{name: "aud of another server", assertion: rsKey.sign(t, with("aud", "https://ehr.example.org/oauth2/token"), nil), words: []string{"aud", s.tokenURL()}},
		{name: "wrong iss (iss = sub = unknown client)", assertion: rsKey.sign(t, func() map[string]any { c := valid(); c["iss"], c["sub"] = "not-a-client", "not-a-client"; return c }(), nil), words: []string{"iss", "not-a-client", "not a registered client_id"}},
		{name: "wrong iss (another registered client)", assertion: rsKey.sign(t, func() map[string]any { c := valid(); c["iss"], c["sub"] = remote.ClientID, remote.ClientID; return c }(), nil), words: []string{"kid"}},
		{name: "sub differs from iss", assertion: rsKey.sign(t, with("sub", "someone-else"), nil), words: []string{"iss", "sub", "client_id"}},
		{name: "client_id field differs from iss", assertion: rsKey.sign(t, valid(), nil), form: url.Values{"client_id": {remote.ClientID}}, words: []string{"client_id", "differs"}},
		{name: "no jti", assertion: rsKey.sign(t, without("jti"), nil), words: []string{"jti"}},
		{name: "reused jti", assertion: reused, words: []string{"jti", "already used"}},
		{name: "unknown kid", assertion: unknownKid.sign(t, valid(), nil), words: []string{"kid", "rs-unknown"}},
		{name: "signed with an unregistered key", assertion: otherRSA.sign(t, valid(), nil), words: []string{"signature does not verify"}},
		{name: "alg none", assertion: jwtPart(t, map[string]string{"alg": "none"}) + "." + jwtPart(t, valid()) + ".", words: []string{"none"}},
		{name: "alg none with kid", assertion: jwtPart(t, map[string]string{"alg": "none", "kid": "rs-1", "typ": "JWT"}) + "." + jwtPart(t, valid()) + ".", words: []string{"none"}},
		{name: "HS256 keyed with the public key", assertion: hs256, words: []string{"HS256", "not accepted"}},
		{name: "embedded jwk header", assertion: embedded, words: []string{"jwk"}},
		{name: "jku header (no jwks_uri registered)", assertion: rsKey.sign(t, valid(), map[string]any{"jku": "https://attacker.example/jwks.json"}), words: []string{"jku"}},
		{name: "client_assertion_type wrong", assertion: rsKey.sign(t, valid(), nil), typ: "urn:ietf:params:oauth:client-assertion-type:saml2-bearer", words: []string{"client_assertion_type", assertionType}},
		{name: "not a JWT", assertion: "abc.def", words: []string{"compact"}},
		{name: "nbf in the future", assertion: rsKey.sign(t, with("nbf", now.Add(3*time.Minute).Unix()), nil), words: []string{"nbf"}},
		{name: "iat in the future", assertion: rsKey.sign(t, with("iat", now.Add(3*time.Minute).Unix()), nil), words: []string{"iat"}},
		{name: "jti longer than 256 characters", assertion: rsKey.sign(t, with("jti", strings.Repeat("j", 257)), nil), words: []string{"jti", "256"}},
		{name: "aud array without the token endpoint", assertion: rsKey.sign(t, with("aud", []string{s.URL, s.URL + "/fhir"}), nil), words: []string{"aud", s.tokenURL()}},
	}
	for _, tc := range cases {
		typ := tc.typ
		if typ == "" {
			typ = assertionType
		}
		f := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {typ}, "client_assertion": {tc.assertion}}
		for k, v := range tc.form {
			f[k] = v
		}
		r := postForm(t, s.tokenURL(), f, creds{})
		e := wantOAuthError(t, tc.name, r, http.StatusUnauthorized, "invalid_client", tc.words...)
		t.Logf("%-45s -> %d %s: %s", tc.name, r.status, e.Error, e.Description)
	}
	// An aud array holding the token endpoint is fine (RFC 7519 section 4.1.3).
	if r := withAssertion(t, s.URL, rsKey.sign(t, with("aud", []string{s.URL, s.tokenURL()}), nil), assertionType, ""); r.status != http.StatusOK {
		t.Errorf("aud array holding the token endpoint: want 200, got %s", r)
	}
	// NumericDate claims are JSON numbers (RFC 7519 section 2); exp as a string is malformed.
	if r := withAssertion(t, s.URL, rsKey.sign(t, with("exp", strconv.FormatInt(now.Add(4*time.Minute).Unix(), 10)), nil), assertionType, ""); r.status != http.StatusUnauthorized {
		knownBug(t, "internal/oauth/assertion.go assertionClaims: exp is a *json.Number, which encoding/json also fills from a JSON string, "+
			"so an assertion with exp as a string (\"%d\") is accepted (HTTP %d); RFC 7519 NumericDate is a JSON number", now.Add(4*time.Minute).Unix(), r.status)
	}
	// A refused assertion does not burn its jti: correctly signed, it then works.
	c := valid()
	bad := otherRSA.sign(t, c, nil)
	wantOAuthError(t, "wrong key", withAssertion(t, s.URL, bad, assertionType, ""), http.StatusUnauthorized, "invalid_client")
	if r := withAssertion(t, s.URL, rsKey.sign(t, c, nil), assertionType, ""); r.status != http.StatusOK {
		t.Errorf("a jti first sent with a forged signature was burnt: %s", r)
	}

	// jku: accepted when it is the registered jwks_uri, refused otherwise.
	rc := assertionClaims(remote.ClientID, s.tokenURL())
	if r := withAssertion(t, s.URL, ecKey.sign(t, rc, map[string]any{"jku": jwksURI}), assertionType, ""); r.status != http.StatusOK {
		t.Errorf("jku equal to the registered jwks_uri: want 200, got %s", r)
	}
	rc = assertionClaims(remote.ClientID, s.tokenURL())
	r := withAssertion(t, s.URL, ecKey.sign(t, rc, map[string]any{"jku": js.URL + "/other.json"}), assertionType, "")
	wantOAuthError(t, "jku not the registered jwks_uri", r, http.StatusUnauthorized, "invalid_client", "jku", "jwks_uri")
}

// TestJWKSURIRotation: a client rotates the key at its jwks_uri; the server
// refetches the set on the unknown kid (at most once per minute, the
// fetcher's minimum refetch interval, which is why this test takes a
// minute) and accepts the new key.
func TestJWKSURIRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a minute (the jwks_uri minimum refetch interval); run without -short")
	}
	t.Parallel()
	s := startDev(t)
	ecKey := newECKey(t, "es-1")
	js := newJWKSServer(t, ecKey)
	remote := s.createClient(t, "rotating keys", "--type", "confidential-asymmetric",
		"--jwks-uri", js.URL+"/jwks.json", "--scope", "system/*.rs")
	rsc := s.createClient(t, "resource server", "--type", "confidential-symmetric", "--scope", "system/Patient.rs", "--introspect-any")
	rsCreds := creds{id: rsc.ClientID, secret: rsc.ClientSecret}
	remoteCreds := assertCreds(t, remote.ClientID, s.tokenURL(), ecKey)
	firstFetch := time.Now()
	mustToken(t, s.URL, remoteCreds, "system/Observation.rs")
	if n := js.hits.Load(); n != 1 {
		t.Fatalf("the jwks_uri was fetched %d times for the first token, want 1", n)
	}

	// Rotation at the jwks_uri: a new kid is refetched (at most once a
	// minute) and then accepted; the old key is gone.
	newKey := newECKey(t, "es-2")
	js.set(t, newKey)
	rotated := assertCreds(t, remote.ClientID, s.tokenURL(), newKey)
	if time.Since(firstFetch) < 50*time.Second {
		r := clientCredentials(t, s.URL, rotated, "")
		e := wantOAuthError(t, "new kid within the minimum refetch interval", r, http.StatusUnauthorized, "invalid_client", "kid", "es-2")
		if !strings.Contains(e.Description, "fetch") {
			t.Logf("note: refusing a new kid within the minimum refetch interval, the description does not say that the jwks_uri was not refetched or when to retry: %q", e.Description)
		}
	}
	hitsBefore := js.hits.Load()
	deadline := firstFetch.Add(75 * time.Second)
	for {
		r := clientCredentials(t, s.URL, rotated, "system/Patient.rs")
		if r.status == http.StatusOK {
			var tr tokenResponse
			r.json(t, &tr)
			wantActive(t, s.URL, rsCreds, tr.AccessToken, "system/Patient.rs", remote.ClientID)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotated key (kid es-2) was not accepted within 75 s of the first fetch: %s", r)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := js.hits.Load(); got != hitsBefore+1 {
		t.Errorf("jwks_uri fetched %d more times for the rotation, want exactly 1 refetch", got-hitsBefore)
	}
	t.Logf("rotated key accepted %s after the first fetch", time.Since(firstFetch).Round(time.Second))
	r := clientCredentials(t, s.URL, remoteCreds, "")
	wantOAuthError(t, "the retired key after rotation", r, http.StatusUnauthorized, "invalid_client", "kid", "es-1")
}
