package oauth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"smartgate/internal/scope"
	"smartgate/internal/store"
)

// appPageView is everything the app page shows: what the app is, whether
// it can be used yet, and the exact requests for this app on this server.
type appPageView struct {
	ID, Name, Type, TypeText, AuthMethod string
	Status, StatusText                   string
	Pending, Disabled, Verified          bool
	EnableCommand                        string
	RegistrationURI                      string
	Scope                                string
	Groups                               []scopeGroup
	GrantTypes, RedirectURIs             []string
	LaunchURI                            string

	Code    *codeRecipe    // apps with a user (authorization_code)
	Backend *backendRecipe // backend services (client_credentials)
}

// codeRecipe is the authorization-code flow with PKCE for one app.
type codeRecipe struct {
	Verifier, Challenge, State string
	RedirectURI, Scope         string
	AuthorizeURL               string
	Params                     []portalRow
	NeedsSecret, NeedsKey      bool
	CurlToken                  string
	TokenParams                []portalRow
	ExpectToken                string // the fields a successful answer has, space-separated
	FHIR                       *fhirCall
	EHRLaunch                  bool
	Refresh                    bool
	CurlRefresh                string
}

// fhirCall is the first API call the page proposes, and what it answers.
type fhirCall struct {
	Curl, What   string
	ExpectType   string // resourceType of the answer ("" for userinfo)
	ExpectStatus int
}

// backendRecipe is SMART Backend Services for one client.
type backendRecipe struct {
	Scope, KID       string
	Symmetric        bool
	Claims           []portalRow
	AssertionFunc    string // a shell function that signs an assertion
	CLI              string // smartgate token --key-file ...
	CurlToken        string
	ExpectToken      string
	FHIR             *fhirCall
	JWKSURI, Problem string
}

var typeTexts = map[string]string{
	Public:                 "public: no secret (a browser, mobile or desktop app); it proves itself with PKCE alone",
	ConfidentialSymmetric:  "confidential-symmetric: a server-side app that authenticates with a client secret (HTTP Basic)",
	ConfidentialAsymmetric: "confidential-asymmetric: authenticates with a JWT signed by its private key (private_key_jwt); smartgate holds only the public key",
}

func newAppPageView(issuer, fhirBase string, c *Client, dev bool) *appPageView {
	v := &appPageView{
		ID: c.ID, Name: clientName(c), Type: c.Type, TypeText: typeTexts[c.Type], AuthMethod: c.Metadata.TokenEndpointAuthMethod,
		Status: c.Status, Verified: c.Verified, RegistrationURI: issuer + "/oauth2/register/" + c.ID,
		Scope: c.Metadata.Scope, Groups: describeScopes(c.Scopes), GrantTypes: c.Metadata.GrantTypes,
		RedirectURIs: c.Metadata.RedirectURIs, LaunchURI: c.Metadata.InitiateLoginURI,
	}
	devFlag := ""
	if dev {
		devFlag = "--dev "
	}
	v.EnableCommand = "smartgate client enable " + devFlag + "-- " + c.ID
	switch c.Status {
	case store.ClientPending:
		v.Pending = true
		v.StatusText = "Waiting for an administrator's approval. Until then /oauth2/authorize shows users a page saying so, and the token endpoint answers 401 invalid_client (client_pending)."
	case store.ClientDisabled:
		v.Disabled = true
		v.StatusText = "Disabled by an administrator: every token it held was revoked. Ask the administrator why."
	default:
		if c.Verified {
			v.StatusText = "Enabled: it can get tokens now."
		} else {
			v.StatusText = "Enabled, unverified: it can get tokens now; users see a warning on the consent page until an administrator verifies it."
		}
	}
	if slices.Contains(c.Metadata.GrantTypes, "authorization_code") && len(c.Metadata.RedirectURIs) > 0 {
		v.Code = newCodeRecipe(issuer, fhirBase, c)
	}
	if slices.Contains(c.Metadata.GrantTypes, "client_credentials") {
		v.Backend = newBackendRecipe(issuer, c)
	}
	return v
}

// randomB64 returns n random bytes in base64url.
func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// pkcePair returns a new RFC 7636 verifier (64 characters) and its S256
// challenge.
func pkcePair() (verifier, challenge string) {
	verifier = randomB64(48)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func newCodeRecipe(issuer, fhirBase string, c *Client) *codeRecipe {
	var ask []scope.Scope
	for _, sc := range c.Scopes {
		switch {
		case sc.IsResource() && sc.Context == scope.ContextSystem:
		case sc.Kind == scope.KindLaunch, sc.Kind == scope.KindLaunchEncounter, sc.Kind == scope.KindAdmin:
		default:
			ask = append(ask, sc)
		}
	}
	if len(ask) == 0 {
		return nil
	}
	cr := &codeRecipe{RedirectURI: c.Metadata.RedirectURIs[0], Scope: scope.Join(ask), State: randomB64(16),
		EHRLaunch: hasLaunchScope(c), NeedsSecret: c.Type == ConfidentialSymmetric, NeedsKey: c.Type == ConfidentialAsymmetric}
	cr.Verifier, cr.Challenge = pkcePair()
	fhirScopes := slices.ContainsFunc(ask, func(sc scope.Scope) bool { return sc.IsResource() || sc.Kind == scope.KindLaunchPatient })
	q := url.Values{}
	q.Set("response_type", "code")
	q.Set("client_id", c.ID)
	q.Set("redirect_uri", cr.RedirectURI)
	q.Set("scope", cr.Scope)
	q.Set("state", cr.State)
	q.Set("code_challenge", cr.Challenge)
	q.Set("code_challenge_method", "S256")
	cr.Params = []portalRow{
		{"response_type", "code", "the authorization code flow, the only one smartgate supports"},
		{"client_id", c.ID, "your app"},
		{"redirect_uri", cr.RedirectURI, "one of your registered redirect URIs, exactly (an http://127.0.0.1 URI may carry any port); the code comes back there"},
		{"scope", cr.Scope, "what the app asks for: a subset of its registered scopes; the user may untick some on the consent page"},
		{"state", cr.State, "a random value your app makes per request and checks when the browser comes back (it protects against cross-site request forgery); required"},
		{"code_challenge", cr.Challenge, "BASE64URL(SHA256(code_verifier)) (PKCE, RFC 7636): the proof that the app that trades the code is the one that asked"},
		{"code_challenge_method", "S256", "the only method accepted (plain is refused)"},
	}
	if fhirScopes {
		q.Set("aud", fhirBase)
		cr.Params = append(cr.Params, portalRow{"aud", fhirBase, "the FHIR base URL the token is for; required with FHIR scopes (SMART App Launch)"})
	}
	cr.AuthorizeURL = issuer + "/oauth2/authorize?" + q.Encode()

	opts := [][2]string{{"-d", "grant_type=authorization_code"}, {"-d", `code="$CODE"`},
		{"--data-urlencode", "redirect_uri=" + cr.RedirectURI}, {"-d", "code_verifier=" + cr.Verifier}}
	cr.TokenParams = []portalRow{
		{"grant_type", "authorization_code", "trade a code for tokens"},
		{"code", "$CODE", "the code from the redirect; it works once, within 60 seconds"},
		{"redirect_uri", cr.RedirectURI, "the same string as at /oauth2/authorize"},
		{"code_verifier", cr.Verifier, "the PKCE verifier whose S256 hash was the code_challenge"},
	}
	opts, cr.TokenParams = withClientAuth(c, opts, cr.TokenParams)
	cr.CurlToken = curlCommand(issuer+"/oauth2/token", opts, " | tee token.json | jq .")
	has := func(k scope.Kind) bool {
		return slices.ContainsFunc(ask, func(sc scope.Scope) bool { return sc.Kind == k })
	}
	fields := []string{"access_token", "token_type", "expires_in", "scope"}
	if has(scope.KindOpenID) {
		fields = append(fields, "id_token")
	}
	if has(scope.KindOfflineAccess) || has(scope.KindOnlineAccess) {
		if slices.Contains(c.Metadata.GrantTypes, "refresh_token") {
			fields = append(fields, "refresh_token")
			cr.Refresh = true
			ropts, _ := withClientAuth(c, [][2]string{{"-d", "grant_type=refresh_token"}, {"-d", `refresh_token="$(jq -r .refresh_token token.json)"`}}, nil)
			cr.CurlRefresh = curlCommand(issuer+"/oauth2/token", ropts, " | tee token.json | jq .")
		}
	}
	if needsPatient(ask) {
		fields = append(fields, "patient")
	}
	cr.ExpectToken = strings.Join(fields, " ")
	cr.FHIR = firstCall(issuer, fhirBase, ask, needsPatient(ask), has(scope.KindOpenID))
	return cr
}

// withClientAuth adds the client's authentication to a token request.
func withClientAuth(c *Client, opts [][2]string, ps []portalRow) ([][2]string, []portalRow) {
	switch c.Metadata.TokenEndpointAuthMethod {
	case "client_secret_basic":
		opts = append([][2]string{{"-u", `"` + c.ID + `:$CLIENT_SECRET"`}}, opts...)
		ps = append(ps, portalRow{"Authorization", "Basic (client_id:client_secret)", "your client secret, in HTTP Basic (curl -u); never in the URL"})
	case "client_secret_post":
		opts = append(opts, [2]string{"-d", "client_id=" + c.ID}, [2]string{"-d", `client_secret="$CLIENT_SECRET"`})
		ps = append(ps, portalRow{"client_id, client_secret", c.ID + ", $CLIENT_SECRET", "your client id and secret as form fields"})
	case "private_key_jwt":
		opts = append(opts, [2]string{"-d", "client_assertion_type=" + AssertionType}, [2]string{"-d", `client_assertion="$(assertion)"`})
		ps = append(ps, portalRow{"client_assertion", "$(assertion)", "a JWT signed with your private key, new for every request (see the assertion recipe below)"})
	default:
		opts = append(opts, [2]string{"-d", "client_id=" + c.ID})
		ps = append(ps, portalRow{"client_id", c.ID, "a public client names itself; the code_verifier is its proof"})
	}
	return opts, ps
}

// firstCall picks a first API call the granted scopes allow.
func firstCall(issuer, fhirBase string, ss []scope.Scope, patient, openid bool) *fhirCall {
	auth := ` -H "Authorization: Bearer $ACCESS_TOKEN" | jq .`
	for _, sc := range ss {
		if !sc.IsResource() {
			continue
		}
		typ := sc.Resource
		if typ == "*" {
			typ = "Patient"
		}
		if patient && typ == "Patient" && sc.Perms.Has(scope.PermR) {
			return &fhirCall{Curl: `curl -s "` + fhirBase + `/Patient/$PATIENT"` + auth, ExpectType: "Patient", ExpectStatus: 200,
				What: "reads the Patient in context (the token response's patient)"}
		}
		if sc.Perms.Has(scope.PermS) {
			return &fhirCall{Curl: "curl -s " + shellArg(fhirBase+"/"+typ+"?_count=2") + auth, ExpectType: "Bundle", ExpectStatus: 200,
				What: "searches " + typ + " records (a searchset Bundle, two per page)"}
		}
	}
	if openid {
		return &fhirCall{Curl: "curl -s " + issuer + "/oauth2/userinfo" + auth, ExpectStatus: 200, What: "asks who signed in (OpenID Connect userinfo)"}
	}
	return nil
}

func newBackendRecipe(issuer string, c *Client) *backendRecipe {
	var sys []scope.Scope
	for _, sc := range c.Scopes {
		if sc.IsResource() && sc.Context == scope.ContextSystem {
			sys = append(sys, sc)
		}
	}
	b := &backendRecipe{Scope: scope.Join(sys), Symmetric: c.Type == ConfidentialSymmetric, JWKSURI: c.Metadata.JWKSURI,
		ExpectToken: "access_token token_type expires_in scope"}
	tokenURL := issuer + "/oauth2/token"
	opts := [][2]string{{"-d", "grant_type=client_credentials"}}
	if b.Scope != "" {
		opts = append(opts, [2]string{"-d", "scope=" + b.Scope})
	}
	opts, _ = withClientAuth(c, opts, nil)
	b.CurlToken = curlCommand(tokenURL, opts, " | tee token.json | jq .")
	b.FHIR = firstCall(issuer, issuer+"/fhir", sys, false, false)
	if c.Type != ConfidentialAsymmetric {
		return b
	}
	b.KID = "$KID"
	if c.JWKS != nil && len(c.JWKS.Keys) > 0 {
		b.KID = c.JWKS.Keys[0].KeyID
	}
	b.Claims = []portalRow{
		{"iss", c.ID, "your client_id"},
		{"sub", c.ID, "your client_id again"},
		{"aud", tokenURL, "this token endpoint, exactly"},
		{"exp", "now + 300", "at most 5 minutes ahead, as a number of seconds since 1970"},
		{"jti", "a new random value", "unique for every assertion: a jti seen before is refused as a replay"},
	}
	kid := shellArg(b.KID)
	if b.KID == "$KID" {
		kid = `"$KID"` // a jwks_uri client: the reader sets KID
	}
	b.AssertionFunc = `b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
assertion() {
  now=$(date +%s)
  header=$(printf '{"alg":"RS384","typ":"JWT","kid":"%s"}' ` + kid + ` | b64url)
  claims=$(printf '{"iss":"%s","sub":"%s","aud":"%s","exp":%d,"iat":%d,"jti":"%s"}' \
    ` + c.ID + ` ` + c.ID + ` ` + tokenURL + ` $((now + 300)) "$now" "$(openssl rand -hex 16)" | b64url)
  sig=$(printf '%s.%s' "$header" "$claims" | openssl dgst -sha384 -sign private.pem -binary | b64url)
  echo "$header.$claims.$sig"
}`
	cli := "smartgate token --client-id " + c.ID + " --key-file private.pem --server " + issuer
	if b.Scope != "" {
		cli += " --scope " + shellArg(b.Scope)
	}
	if b.KID != "$KID" {
		cli += " --kid " + shellArg(b.KID)
	}
	b.CLI = cli
	return b
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9._~:/=@%+,-]+$`)

// shellArg quotes v for a POSIX shell when it needs it.
func shellArg(v string) string {
	if shellSafe.MatchString(v) {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// curlCommand writes a curl command one option per line. An option value
// that starts with a quote or $ is kept as it is (it names a shell
// variable); any other is quoted as the shell needs.
func curlCommand(u string, opts [][2]string, tail string) string {
	var b strings.Builder
	b.WriteString("curl -s ")
	b.WriteString(shellArg(u))
	for _, o := range opts {
		b.WriteString(" \\\n  ")
		b.WriteString(o[0])
		b.WriteByte(' ')
		v := o[1]
		if name, val, ok := strings.Cut(v, "="); ok && (strings.HasPrefix(val, `"`) || strings.HasPrefix(val, "$")) {
			b.WriteString(name + "=" + val)
		} else if strings.HasPrefix(v, `"`) {
			b.WriteString(v)
		} else {
			b.WriteString(shellArg(v))
		}
	}
	b.WriteString(tail)
	return b.String()
}

// prettyJSON indents a JSON document for display ("" when it is not JSON).
func prettyJSON(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return ""
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return ""
	}
	return string(out)
}
