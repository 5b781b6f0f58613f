package e2e

// Federated sign-in (issue 7 items 2, 3 and 5): users sign in to smartgate
// through a real, independent OpenID Connect provider (oidc-provider from
// npm, oidcprovider_test.go) during SMART launches, and smartgate links,
// matches or provisions them, or explains why not, on real pages.

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

const opSecret = "op-client-secret-0123456789abcdefghijklmnop"

func TestFederatedLogin(t *testing.T) {
	t.Parallel()
	dir := oidcProviderProject(t)
	jwtKey := newECKey(t, "smartgate-upstream-es384")
	keyFile := filepath.Join(t.TempDir(), "upstream-key.pem")
	if err := os.WriteFile(keyFile, []byte(jwtKey.pkcs8PEM(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	// smartgate's port is not known yet: a native client's loopback
	// redirect URI matches any port (RFC 8252 §7.3), as oidc-provider
	// implements it.
	redirect := []string{"http://127.0.0.1/login/callback"}
	op := startOIDCProviderIn(t, dir, oidcProviderOptions{
		Clients: []map[string]any{
			{"client_id": "smartgate", "client_secret": opSecret, "application_type": "native", "redirect_uris": redirect},
			{"client_id": "smartgate-jwt", "application_type": "native", "redirect_uris": redirect, "token_endpoint_auth_method": "private_key_jwt",
				"token_endpoint_auth_signing_alg": "ES384", "jwks": map[string]any{"keys": []any{jwtKey.public()}}},
		},
		Accounts: map[string]map[string]any{
			"amy-at-op":      {"email": "amy@example.org", "email_verified": true, "name": "Amy Shaw"},
			"jose-new":       {"email": "jose@example.org", "email_verified": true, "fhirUser": "Patient/pat-jose-alvarez", "groups": []string{"admins"}},
			"stranger":       {"email": "stranger@elsewhere.org", "email_verified": true},
			"kim-unverified": {"email": "kim@example.org", "email_verified": false},
			"ines-match":     {"email": "ines@example.org", "email_verified": true},
		},
	})
	down := closedPort(t)
	providers := []map[string]any{
		{"id": "op", "name": "Hospital ID", "issuer": op.Issuer, "client_id": "smartgate", "client_secret": opSecret, "allow_private": true,
			"match_claim": "email", "provisioning": map[string]any{"enabled": true, "email_domains": []string{"example.org"}},
			"claims": map[string]any{"groups": "groups", "group_roles": map[string]string{"admins": "admin"}}},
		{"id": "op-strict", "name": "Strict ID", "issuer": op.Issuer, "client_id": "smartgate", "client_secret": opSecret, "allow_private": true},
		{"id": "op-bad", "name": "Misconfigured ID", "issuer": op.Issuer, "client_id": "smartgate", "client_secret": "not-the-secret", "allow_private": true},
		{"id": "op-down", "name": "Offline ID", "issuer": "http://" + down, "client_id": "smartgate", "client_secret": opSecret, "allow_private": true},
		{"id": "op-jwt", "name": "Key ID", "issuer": op.Issuer, "client_id": "smartgate-jwt", "private_key_file": keyFile, "private_key_id": jwtKey.kid,
			"allow_private": true, "match_claim": "email"},
	}
	conf, _ := json.Marshal(providers)
	f := newSmartFixture(t, "SMARTGATE_FEDERATION_PROVIDERS="+string(conf))
	f.s.cli(t, "user", "link", "--username", "amy.shaw", "--provider", "op", "--subject", "amy-at-op")

	// upstreamButton presses the login page's button of provider id.
	upstreamButton := func(t *testing.T, b *headless, l landing, id string) landing {
		t.Helper()
		if l.page == nil || len(l.page.forms("#login")) != 1 {
			t.Fatalf("want the login page, got %s", l)
		}
		return b.submit(l.page.form(t, "#upstream-"+id), fill{}, "action=upstream")
	}

	t.Run("standalone patient launch through the provider", func(t *testing.T) {
		b := newHeadless(t, f.s.URL)
		a := f.request(f.patientApp, patientScope)
		l := b.get(a.url())
		if l.page == nil {
			t.Fatalf("want the login page, got %s", l)
		}
		for _, id := range []string{"op", "op-strict", "op-bad", "op-down", "op-jwt"} {
			if len(l.page.forms("#upstream-"+id)) != 1 {
				t.Errorf("the login page has no button for provider %s: %s", id, l.page)
			}
		}
		if !strings.Contains(l.page.text(), "Sign in with Hospital ID") {
			t.Errorf("the button does not carry the provider's name: %s", l.page.text())
		}
		if csp := l.page.header.Get("Content-Security-Policy"); !strings.Contains(csp, op.Issuer) {
			t.Errorf("the login page's CSP %q does not let its forms redirect to the provider %s", csp, op.Issuer)
		}
		l = upstreamButton(t, b, l, "op")
		if l.away == nil {
			t.Fatalf("the provider button did not lead to the provider: %s", l)
		}
		q := l.away.Query()
		for k, want := range map[string]string{"client_id": "smartgate", "response_type": "code", "redirect_uri": f.s.URL + "/login/callback",
			"code_challenge_method": "S256", "scope": "openid email profile"} {
			if q.Get(k) != want {
				t.Errorf("authorization request to the provider: %s=%q, want %q (%s)", k, q.Get(k), want, l.away)
			}
		}
		for _, k := range []string{"state", "nonce", "code_challenge"} {
			if q.Get(k) == "" {
				t.Errorf("authorization request to the provider has no %s: %s", k, l.away)
			}
		}
		if !slices.ContainsFunc(l.setCookies, func(c string) bool {
			return strings.HasPrefix(c, "smartgate-upstream=") && strings.Contains(c, "HttpOnly") && strings.Contains(c, "SameSite=Lax")
		}) {
			t.Errorf("no HttpOnly SameSite=Lax smartgate-upstream cookie binds the sign-in to the browser: %v", l.setCookies)
		}
		l = op.signIn(t, b, l, opPerson{login: "amy-at-op"})
		fl := b.continueFlow(l, person{})
		if !slices.Equal(fl.pages, []string{"consent"}) {
			t.Errorf("after the provider, smartgate showed %v, want [consent]", fl.pages)
		}
		tok := a.exchange(t, fl)
		if got := tok.Extra("patient"); got != "pat-amy-shaw" {
			t.Errorf("token response patient %v, want pat-amy-shaw (the linked user's patient)", got)
		}
		_, claims := a.verifyIDToken(t, tok)
		if want := f.fhirBase + "/Patient/pat-amy-shaw"; claims["fhirUser"] != want {
			t.Errorf("id_token fhirUser %v, want %s", claims["fhirUser"], want)
		}
		f.wantFHIR(t, "own record after a federated sign-in", tok.AccessToken, "/Patient/pat-amy-shaw", http.StatusOK)
		waitAudit(t, f.s, func(evs []auditEvent) (bool, string) {
			for _, e := range evs {
				if e.Action == "login.success" && strings.Contains(e.Detail, `"method":"upstream"`) && strings.Contains(e.Detail, `"subject":"amy-at-op"`) {
					return true, ""
				}
			}
			return false, "no login.success event for the upstream sign-in of amy-at-op"
		})
	})

	t.Run("idp hint goes straight to the provider", func(t *testing.T) {
		b := newHeadless(t, f.s.URL)
		a := f.request(f.patientApp, patientScope, oauth2.SetAuthURLParam("idp", "op"))
		l := b.get(a.url())
		l = op.signIn(t, b, l, opPerson{login: "amy-at-op"})
		fl := b.continueFlow(l, person{})
		if tok := a.exchange(t, fl); tok.Extra("patient") != "pat-amy-shaw" {
			t.Errorf("patient %v after an idp-hinted sign-in", tok.Extra("patient"))
		}
		bad := f.request(f.patientApp, patientScope, oauth2.SetAuthURLParam("idp", "nope"))
		f.wantRedirectError(t, "unknown idp", newHeadless(t, f.s.URL).get(bad.url()), "invalid_request", bad.state, "nope", "op-strict")
	})

	t.Run("provisioning creates the user with the provider's fhirUser", func(t *testing.T) {
		b := newHeadless(t, f.s.URL)
		a := f.request(f.patientApp, patientScope)
		l := op.signIn(t, b, upstreamButton(t, b, b.get(a.url()), "op"), opPerson{login: "jose-new"})
		tok := a.exchange(t, b.continueFlow(l, person{}))
		if got := tok.Extra("patient"); got != "pat-jose-alvarez" {
			t.Errorf("token response patient %v, want pat-jose-alvarez from the fhirUser claim", got)
		}
		u := userShow(t, f.s, "jose@example.org")
		if u.Role != "patient" || u.FHIRUser != "Patient/pat-jose-alvarez" || u.HasPassword || len(u.Links) != 1 || u.Links[0].Provider != "op" || u.Links[0].Subject != "jose-new" {
			t.Errorf("provisioned user %+v: want role patient (the admins group is not trusted), fhirUser Patient/pat-jose-alvarez, no password, linked to op/jose-new", u)
		}
	})

	t.Run("not linked and not provisioned: the page names the command", func(t *testing.T) {
		for _, tc := range []struct {
			provider, login string
			say             []string
		}{
			{"op-strict", "jose-new", []string{"match_claim is none", "provisioning is off", "smartgate user link --username USERNAME --provider op-strict --subject jose-new"}},
			{"op", "stranger", []string{"only for example.org addresses", "stranger@elsewhere.org", "--provider op --subject stranger"}},
			{"op", "kim-unverified", []string{"kim@example.org is verified", "--provider op --subject kim-unverified"}},
		} {
			b := newHeadless(t, f.s.URL)
			a := f.request(f.patientApp, patientScope)
			l := op.signIn(t, b, upstreamButton(t, b, b.get(a.url()), tc.provider), opPerson{login: tc.login})
			wantErrorPage(t, tc.provider+" "+tc.login, l, http.StatusForbidden, append(tc.say, "not linked", "upstream_not_linked")...)
		}
		// The administrator runs the command; the same sign-in then works.
		f.s.cli(t, "user", "link", "--username", "jose@example.org", "--provider", "op-strict", "--subject", "jose-new")
		b := newHeadless(t, f.s.URL)
		a := f.request(f.patientApp, patientScope)
		l := op.signIn(t, b, upstreamButton(t, b, b.get(a.url()), "op-strict"), opPerson{login: "jose-new"})
		if tok := a.exchange(t, b.continueFlow(l, person{})); tok.Extra("patient") != "pat-jose-alvarez" {
			t.Errorf("after user link: patient %v", tok.Extra("patient"))
		}
		waitAudit(t, f.s, func(evs []auditEvent) (bool, string) {
			for _, e := range evs {
				if e.Action == "login.failure" && strings.Contains(e.Detail, `"reason":"not_linked"`) && strings.Contains(e.Detail, `"subject":"kim-unverified"`) {
					return true, ""
				}
			}
			return false, "no login.failure event with reason not_linked for kim-unverified"
		})
	})

	t.Run("a verified email matches a username; private_key_jwt", func(t *testing.T) {
		smartgateStdin(t, f.s.env, "correct horse battery staple\n", "user", "create", "--username", "ines@example.org", "--role", "practitioner",
			"--fhir-user", "Practitioner/pra-ines-munoz", "--password-stdin", "--dev", "--data-dir", f.s.dataDir)
		for _, provider := range []string{"op", "op-jwt"} {
			b := newHeadless(t, f.s.URL)
			l := b.get(f.s.URL + "/login?next=/account/apps")
			l = op.signIn(t, b, upstreamButton(t, b, l, provider), opPerson{login: "ines-match"})
			if l.page == nil || l.page.status != http.StatusOK || l.page.url.Path != "/account/apps" {
				t.Errorf("%s: after the provider, want /account/apps, got %s", provider, l)
			}
		}
		u := userShow(t, f.s, "ines@example.org")
		if len(u.Links) != 2 {
			t.Errorf("ines@example.org links %+v, want op/ines-match and op-jwt/ines-match", u.Links)
		}
	})

	t.Run("wrong client secret", func(t *testing.T) {
		b := newHeadless(t, f.s.URL)
		a := f.request(f.patientApp, patientScope)
		l := op.signIn(t, b, upstreamButton(t, b, b.get(a.url()), "op-bad"), opPerson{login: "amy-at-op"})
		wantErrorPage(t, "wrong client secret", l, http.StatusBadGateway, "refused smartgate's client credentials", "client_secret", "upstream_client_rejected", "Back to the sign-in page")
	})

	t.Run("provider down", func(t *testing.T) {
		b := newHeadless(t, f.s.URL)
		a := f.request(f.patientApp, patientScope)
		l := upstreamButton(t, b, b.get(a.url()), "op-down")
		wantErrorPage(t, "provider down", l, http.StatusBadGateway, "Offline ID cannot be reached", "upstream_unavailable")
		// The way back leads to the sign-in page, where a local sign-in works.
		l = b.get(f.s.URL + linkHref(t, l.page, "back-to-login"))
		fl := b.continueFlow(l, person{username: "amy.shaw", password: demoPassword(t, f.s.dataDir, "amy.shaw")})
		if tok := a.exchange(t, fl); tok.Extra("patient") != "pat-amy-shaw" {
			t.Errorf("local sign-in after the provider failed: patient %v", tok.Extra("patient"))
		}
		waitAudit(t, f.s, func(evs []auditEvent) (bool, string) {
			for _, e := range evs {
				if e.Action == "login.failure" && strings.Contains(e.Detail, `"provider":"op-down"`) && strings.Contains(e.Detail, `"reason":"unavailable"`) {
					return true, ""
				}
			}
			return false, "no login.failure event for op-down"
		})
	})

	t.Run("state bound to the browser", func(t *testing.T) {
		b := newHeadless(t, f.s.URL)
		a := f.request(f.patientApp, patientScope)
		l := upstreamButton(t, b, b.get(a.url()), "op")
		callback := op.browse(t, b, l.away.String(), opPerson{login: "amy-at-op"})
		// Another browser (no cookie of this sign-in) is refused.
		wantErrorPage(t, "callback in another browser", newHeadless(t, f.s.URL).get(callback.String()), http.StatusBadRequest,
			"upstream_state_invalid", "another browser")
		// An altered state is refused.
		q := callback.Query()
		q.Set("state", q.Get("state")[:len(q.Get("state"))-4]+"AAAA")
		altered := *callback
		altered.RawQuery = q.Encode()
		wantErrorPage(t, "altered state", b.get(altered.String()), http.StatusBadRequest, "upstream_state_invalid", "did not make")
		// The right browser finishes.
		fl := b.continueFlow(b.get(callback.String()), person{})
		a.exchange(t, fl)
	})

	t.Run("the user cancels at the provider", func(t *testing.T) {
		b := newHeadless(t, f.s.URL)
		a := f.request(f.patientApp, patientScope, oauth2.SetAuthURLParam("idp", "op"))
		l := op.signIn(t, b, b.get(a.url()), opPerson{cancel: true})
		wantErrorPage(t, "cancelled at the provider", l, http.StatusForbidden, "cancelled", "upstream_denied")
		// Back to the sign-in page: the page itself this time, not the
		// provider again (the idp hint is spent).
		l = b.get(f.s.URL + linkHref(t, l.page, "back-to-login"))
		if l.page == nil || len(l.page.forms("#login")) != 1 {
			t.Fatalf("the way back does not show the login page: %s", l)
		}
	})

	t.Run("local sign-in still works", func(t *testing.T) {
		b, amy := f.user(t, "amy.shaw")
		tok, _ := f.request(f.patientApp, patientScope).run(t, b, amy)
		if tok.Extra("patient") != "pat-amy-shaw" {
			t.Errorf("local sign-in: patient %v", tok.Extra("patient"))
		}
	})
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// linkHref returns the href of the page's element with this id.
func linkHref(t *testing.T, p *htmlPage, id string) string {
	t.Helper()
	if p == nil || p.doc == nil {
		t.Fatalf("no page to find #%s on", id)
	}
	for n := range p.doc.Descendants() {
		if v, _ := attr(n, "id"); v == id {
			if href, ok := attr(n, "href"); ok {
				return href
			}
		}
	}
	t.Fatalf("the page has no link #%s: %s", id, p)
	return ""
}

type shownUser struct {
	Role        string `json:"role"`
	FHIRUser    string `json:"fhir_user"`
	HasPassword bool   `json:"has_password"`
	Links       []struct {
		Provider string `json:"provider"`
		Subject  string `json:"subject"`
	} `json:"links"`
}

// userShow runs `smartgate user show NAME -o json`.
func userShow(t *testing.T, s *devServer, username string) shownUser {
	t.Helper()
	r := s.cli(t, "user", "show", username)
	var u shownUser
	if err := json.Unmarshal([]byte(r.stdout), &u); err != nil {
		t.Fatalf("user show %s: %v\n%s", username, err, r)
	}
	return u
}
