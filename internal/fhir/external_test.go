package fhir_test

import (
	"context"
	"strings"
	"testing"

	gojose "github.com/go-jose/go-jose/v4"

	"smartgate/internal/config"
	"smartgate/internal/extauth"
	"smartgate/internal/extauth/extauthtest"
	"smartgate/internal/fhir"
	"smartgate/internal/fhir/devdata"
	"smartgate/internal/store"
)

// Access tokens of a trusted external issuer (federation.issuers) go
// through the same enforcement as smartgate's own: scopes, the patient
// compartment, 403 for what the scopes lack; refusals are 401 invalid_token
// saying why; an unreachable issuer is 503.
func TestExternalTokens(t *testing.T) {
	is := extauthtest.New(t)
	kc := is.Config(issuer + "/fhir")
	kc.Types, kc.ScopeClaim, kc.Introspection = []string{"JWT"}, "scp", nil
	kc.ScopeMap = map[string]string{"ehr-read": "user/*.rs"}
	f := newFixture(t, "sqlite", func(d *fhir.Deps) {
		d.External = extauth.New(extauth.Options{Own: issuer, FHIRBase: issuer + "/fhir", Issuers: []config.ExternalIssuer{kc}})
	})
	pats := devdata.Patients()
	me, other := pats[0], pats[1]
	keycloak := func(extra map[string]any) string {
		return is.Sign(is.RSA, gojose.RS256, "rsa-1", "JWT", is.Claims(issuer+"/fhir", "", extra))
	}
	patientTok := keycloak(map[string]any{"scope": nil, "scp": []string{"openid", "patient/Observation.rs"}, "patient": me})

	t.Run("accepted for its patient and scopes", func(t *testing.T) {
		r := f.do("GET", "/Observation?patient="+me, patientTok, nil)
		if r.status != 200 || len(r.ids("match")) == 0 {
			t.Fatalf("GET Observation?patient=%s: %d %s", me, r.status, r.body)
		}
		r = f.do("GET", "/Observation", patientTok, nil)
		for _, id := range r.ids("match") {
			obs := f.do("GET", "/"+id, f.token("system/Observation.rs", "", ""), nil)
			if ref, _ := obs.json["subject"].(map[string]any)["reference"].(string); ref != "Patient/"+me {
				t.Errorf("%s is of %s, outside the token's patient %s", id, ref, me)
			}
		}
	})
	t.Run("another patient's record is not found", func(t *testing.T) {
		if r := f.do("GET", "/Patient/"+other, keycloak(map[string]any{"scp": []string{"patient/Patient.rs"}, "patient": me}), nil); r.status != 404 {
			t.Errorf("another patient: %d %s, want 404", r.status, r.body)
		}
	})
	t.Run("a scope it lacks is 403 insufficient_scope", func(t *testing.T) {
		r := f.do("GET", "/Condition?patient="+me, patientTok, nil)
		if r.status != 403 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="insufficient_scope", scope="patient/Condition.s"`) {
			t.Errorf("Condition with patient/Observation.rs: %d %q %s", r.status, r.header.Get("WWW-Authenticate"), r.body)
		}
	})
	t.Run("scope_map", func(t *testing.T) {
		r := f.do("GET", "/Patient/"+other, keycloak(map[string]any{"scp": []string{"ehr-read"}, "fhirUser": "Practitioner/" + devdata.Practitioners()[0]}), nil)
		if r.status != 200 {
			t.Errorf("ehr-read (mapped to user/*.rs) of a practitioner: %d %s", r.status, r.body)
		}
		// user/ scopes follow the user's own access, as for own tokens.
		r = f.do("GET", "/Patient/"+other, keycloak(map[string]any{"scp": []string{"ehr-read"}}), nil)
		if r.status != 403 || !strings.Contains(string(r.body), "fhirUser") {
			t.Errorf("ehr-read without fhirUser: %d %s", r.status, r.body)
		}
	})
	t.Run("no FHIR scope at all is 403", func(t *testing.T) {
		r := f.do("GET", "/Patient/"+me, keycloak(map[string]any{"scp": []string{"openid", "email"}}), nil)
		if r.status != 403 || !strings.Contains(string(r.body), "no SMART resource scope") || !strings.Contains(string(r.body), "'email' is unknown") {
			t.Errorf("openid email: %d %s", r.status, r.body)
		}
	})

	refused := map[string]struct{ tok, why string }{
		"wrong audience": {is.Sign(is.RSA, gojose.RS256, "rsa-1", "JWT", is.Claims("account", "", map[string]any{"scp": []string{"user/*.rs"}})), "the access token is wrong audience"},
		"untrusted issuer": {extauthtest.New(t).AccessToken(is.Claims(issuer+"/fhir", "user/*.rs", map[string]any{"iss": "https://idp.example.net"})),
			"the access token is from an issuer this API does not trust"},
		"wrong typ":  {is.AccessToken(is.Claims(issuer+"/fhir", "user/*.rs", nil)), `the access token is of the wrong type: the JWT has typ 'at+jwt'`},
		"expired":    {keycloak(map[string]any{"scp": []string{"user/*.rs"}, "exp": 1700000000, "iat": 1699999000}), "the access token is expired"},
		"id_token":   {keycloak(map[string]any{"scp": []string{"user/*.rs"}, "typ": "ID"}), "the access token is an id_token"},
		"no patient": {keycloak(map[string]any{"scp": []string{"patient/*.rs"}}), "the access token is missing its patient"},
		"unknown key": {is.Sign(is.Other, gojose.RS256, "rsa-9", "JWT", is.Claims(issuer+"/fhir", "", map[string]any{"scp": []string{"user/*.rs"}})),
			"the access token is signed with an unknown key"},
		"alg not allowed": {is.Sign(is.RSA, gojose.RS512, "rsa-1", "JWT", is.Claims(issuer+"/fhir", "", map[string]any{"scp": []string{"user/*.rs"}})),
			"the access token is signed with an algorithm that is not allowed"},
	}
	for name, tt := range refused {
		t.Run("refused: "+name, func(t *testing.T) {
			r := f.do("GET", "/Patient/"+me, tt.tok, nil)
			h := r.header.Get("WWW-Authenticate")
			if r.status != 401 || !strings.Contains(h, `error="invalid_token", error_description="`+tt.why) {
				t.Errorf("%d %q %s, want 401 with %q", r.status, h, r.body, tt.why)
			}
		})
	}

	t.Run("own tokens are unchanged", func(t *testing.T) {
		if r := f.do("GET", "/Patient/"+me, f.token("system/Patient.rs", "", ""), nil); r.status != 200 {
			t.Errorf("own token: %d %s", r.status, r.body)
		}
		r := f.do("GET", "/Patient/"+me, "not-a-token", nil)
		if h := r.header.Get("WWW-Authenticate"); r.status != 401 || !strings.Contains(h, "the access token is malformed") {
			t.Errorf("an opaque token, no issuer introspecting: %d %q", r.status, h)
		}
	})

	t.Run("audit events name the issuer", func(t *testing.T) {
		var a audited
		g := newFixture(t, "sqlite", a.deps, func(d *fhir.Deps) {
			d.External = extauth.New(extauth.Options{Own: issuer, FHIRBase: issuer + "/fhir", Issuers: []config.ExternalIssuer{kc}})
		})
		st, aw := a.st, a.w
		tok := keycloak(map[string]any{"scp": []string{"system/Patient.rs"}, "client_id": nil, "azp": "lab-portal", "sub": "svc-1"})
		if r := g.do("GET", "/Patient/"+me, tok, nil); r.status != 200 {
			t.Fatalf("read: %d %s", r.status, r.body)
		}
		aw.Close()
		evs, err := st.ListAudit(context.Background(), store.AuditFilter{Action: "fhir.read"})
		if err != nil || len(evs) != 1 {
			t.Fatalf("fhir.read events: %v %+v", err, evs)
		}
		if e := evs[0]; e.ClientID != "lab-portal@"+is.URL || e.Actor != "user:svc-1@"+is.URL {
			t.Errorf("audit event actor %q client %q, want both named with the issuer %s", e.Actor, e.ClientID, is.URL)
		}
	})

	t.Run("issuer down is 503", func(t *testing.T) {
		down := extauthtest.New(t)
		g := newFixture(t, "sqlite", func(d *fhir.Deps) {
			d.External = extauth.New(extauth.Options{Own: issuer, FHIRBase: issuer + "/fhir", Issuers: []config.ExternalIssuer{down.Config(issuer + "/fhir")}})
		})
		tok := down.AccessToken(down.Claims(issuer+"/fhir", "user/*.rs", nil))
		down.Close()
		r := g.do("GET", "/Patient/"+me, tok, nil)
		if r.status != 503 || !strings.Contains(string(r.body), "external_issuer_unavailable") || r.header.Get("Retry-After") == "" {
			t.Errorf("issuer down: %d %v %s", r.status, r.header, r.body)
		}
	})
}
