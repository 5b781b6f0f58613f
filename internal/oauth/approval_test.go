package oauth

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"smartgate/internal/store"
)

// register self-registers a client over HTTP (RFC 7591) and returns the
// decoded registration response.
func (f *oauthFixture) register(md store.ClientMetadata) map[string]any {
	f.t.Helper()
	b, err := json.Marshal(md)
	if err != nil {
		f.t.Fatal(err)
	}
	w := f.serve(f.s.Register, jsonRequest("POST", "/oauth2/register", "", string(b)))
	if w.Code != 201 {
		f.t.Fatalf("register %+v: status %d, want 201; body: %s", md, w.Code, w.Body.String())
	}
	return body(f.t, w)
}

// The approval policy (USERS.md item 9, docs/clients.md): clients an
// administrator creates are enabled and verified; self-registered public
// apps whose scopes are all patient-level are enabled and unverified;
// every other self-registered client waits for approval.
func TestApprovalPolicy(t *testing.T) {
	f := newOAuthFixture(t, nil)
	pub, _ := ecJWKS(t)
	public := func(scope string) store.ClientMetadata {
		return store.ClientMetadata{TokenEndpointAuthMethod: "none", RedirectURIs: []string{"com.example.app:/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"}, Scope: scope}
	}
	confidential := func(scope string) store.ClientMetadata {
		return store.ClientMetadata{RedirectURIs: []string{"https://app.example.com/cb"}, Scope: scope}
	}
	backend := store.ClientMetadata{TokenEndpointAuthMethod: "private_key_jwt", GrantTypes: []string{"client_credentials"}, JWKS: pub, Scope: "system/Observation.rs"}
	const patientLevelScopes = "patient/*.rs patient/Observation.cruds patient/Patient.read launch/patient openid fhirUser profile offline_access online_access"

	for _, tc := range []struct {
		name         string
		md           store.ClientMetadata
		byAdmin      bool
		wantStatus   string
		wantVerified bool
	}{
		{"admin: public with user scopes", public("user/*.rs launch openid fhirUser"), true, store.ClientEnabled, true},
		{"admin: confidential", confidential("user/*.cruds"), true, store.ClientEnabled, true},
		{"admin: backend service", backend, true, store.ClientEnabled, true},
		{"self: public, patient-level only", public(patientLevelScopes), false, store.ClientEnabled, false},
		{"self: public, one patient scope", public("patient/Observation.rs"), false, store.ClientEnabled, false},
		{"self: public with a user/ scope", public("patient/*.rs user/Observation.rs"), false, store.ClientPending, false},
		{"self: public with launch (EHR launch)", public("launch patient/*.rs"), false, store.ClientPending, false},
		{"self: public with launch/encounter", public("launch/patient launch/encounter patient/*.rs"), false, store.ClientPending, false},
		{"self: public asking for smartgate:admin", public("patient/*.rs smartgate:admin"), false, store.ClientPending, false},
		{"self: confidential, patient-level only", confidential("patient/*.rs openid"), false, store.ClientPending, false},
		{"self: backend service", backend, false, store.ClientPending, false},
	} {
		c, err := f.s.Clients.Create(context.Background(), tc.md, Options{ByAdmin: tc.byAdmin})
		if err != nil {
			t.Errorf("%s: Create: %v", tc.name, err)
			continue
		}
		if c.Client.Status != tc.wantStatus || c.Client.Verified != tc.wantVerified {
			t.Errorf("%s: status %s verified %v, want %s verified %v", tc.name, c.Client.Status, c.Client.Verified, tc.wantStatus, tc.wantVerified)
		}
		wantBy := "self"
		if tc.byAdmin {
			wantBy = "admin"
		}
		if c.Client.CreatedBy != wantBy {
			t.Errorf("%s: created_by %q, want %q", tc.name, c.Client.CreatedBy, wantBy)
		}
		stored, err := f.st.GetClient(context.Background(), c.Client.ID)
		if err != nil || stored.Status != tc.wantStatus || stored.Verified != tc.wantVerified {
			t.Errorf("%s: stored client %+v, %v", tc.name, stored, err)
		}
	}

	// Over HTTP the registration response says where the client stands.
	for _, tc := range []struct {
		md           store.ClientMetadata
		wantStatus   string
		wantVerified bool
		wantText     string
	}{
		{public("patient/*.rs openid fhirUser"), store.ClientEnabled, false, "Enabled as an unverified app: users see a warning on the consent page until an administrator verifies it."},
		{public("user/*.rs"), store.ClientPending, false, "waiting for an administrator's approval"},
	} {
		m := f.register(tc.md)
		if m["smartgate_status"] != tc.wantStatus || m["smartgate_verified"] != tc.wantVerified {
			t.Errorf("register %q: smartgate_status %v verified %v, want %s %v", tc.md.Scope, m["smartgate_status"], m["smartgate_verified"], tc.wantStatus, tc.wantVerified)
		}
		if d, _ := m["smartgate_status_description"].(string); !strings.Contains(d, tc.wantText) {
			t.Errorf("register %q: smartgate_status_description %q, want it to contain %q", tc.md.Scope, d, tc.wantText)
		}
	}
}

// consents counts the consent rows of a client.
func (f *oauthFixture) consents(clientID string) int {
	f.t.Helper()
	var n int
	if err := f.st.Pools()["sqlite_writer"].QueryRow("SELECT COUNT(*) FROM consents WHERE client_id = ?", clientID).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// giveConsent stores a user's consent for a client.
func (f *oauthFixture) giveConsent(clientID, subject string) {
	f.t.Helper()
	if _, err := f.st.Pools()["sqlite_writer"].Exec("INSERT INTO consents (client_id, subject, scope, created_at) VALUES (?, ?, ?, ?)", clientID, subject, "patient/*.rs", f.now.UnixMicro()); err != nil {
		f.t.Fatal(err)
	}
}

// A change that widens what a client may do (a scope no registered scope
// covers, a grant type, a redirect URI) sends it back through approval and
// forgets every consent; narrowing and administrators' changes do not.
func TestUpdateWidening(t *testing.T) {
	f := newOAuthFixture(t, nil)
	ctx := context.Background()

	// An approved confidential client: self-registered, then enabled by an administrator.
	approved := func() created {
		c := f.create(store.ClientMetadata{
			RedirectURIs: []string{"https://app.example.com/cb"}, GrantTypes: []string{"authorization_code"},
			Scope: "launch openid user/Observation.rs patient/*.rs",
		}, Options{})
		if c.Client.Status != store.ClientPending {
			t.Fatalf("self-registered confidential client is %s, want pending", c.Client.Status)
		}
		if _, err := f.s.Clients.SetStatus(ctx, c.ID, store.ClientEnabled); err != nil {
			t.Fatal(err)
		}
		f.giveConsent(c.ID, "alice")
		f.giveConsent(c.ID, "bob")
		return c
	}
	type change func(md *store.ClientMetadata)
	for _, tc := range []struct {
		name        string
		change      change
		byAdmin     bool
		wantWidened bool
		wantStatus  string
		wantVerif   bool
	}{
		{"scope not covered", func(md *store.ClientMetadata) { md.Scope += " user/Patient.rs" }, false, true, store.ClientPending, false},
		{"wider permissions", func(md *store.ClientMetadata) { md.Scope = "launch openid user/Observation.cruds patient/*.rs" }, false, true, store.ClientPending, false},
		{"scope in another context", func(md *store.ClientMetadata) { md.Scope += " user/Condition.rs" }, false, true, store.ClientPending, false},
		{"new fixed scope", func(md *store.ClientMetadata) { md.Scope += " offline_access" }, false, true, store.ClientPending, false},
		{"grant type added", func(md *store.ClientMetadata) { md.GrantTypes = []string{"authorization_code", "refresh_token"} }, false, true, store.ClientPending, false},
		{"redirect URI added", func(md *store.ClientMetadata) {
			md.RedirectURIs = append(md.RedirectURIs, "https://evil.example.com/cb")
		}, false, true, store.ClientPending, false},
		{"scope covered by a registered wildcard", func(md *store.ClientMetadata) { md.Scope += " patient/Observation.rs" }, false, false, store.ClientEnabled, true},
		{"scope constrained inside a registered one", func(md *store.ClientMetadata) { md.Scope += " user/Observation.rs?category=laboratory" }, false, false, store.ClientEnabled, true},
		{"v1 spelling of a registered scope", func(md *store.ClientMetadata) { md.Scope += " user/Observation.read" }, false, false, store.ClientEnabled, true},
		{"narrowing scopes", func(md *store.ClientMetadata) { md.Scope = "openid patient/Observation.rs" }, false, false, store.ClientEnabled, true},
		{"removing a redirect URI", func(md *store.ClientMetadata) {
			md.RedirectURIs = []string{"https://app.example.com/cb"}
			md.ClientName = "renamed"
		}, false, false, store.ClientEnabled, true},
		{"administrator widens", func(md *store.ClientMetadata) {
			md.Scope += " user/*.cruds"
			md.GrantTypes = []string{"authorization_code", "refresh_token"}
		}, true, true, store.ClientEnabled, true},
	} {
		c := approved()
		md := c.Client.Metadata
		tc.change(&md)
		got, widened, err := f.s.Clients.Update(ctx, c.ID, md, tc.byAdmin)
		if err != nil {
			t.Errorf("%s: Update: %v", tc.name, err)
			continue
		}
		if widened != tc.wantWidened || got.Status != tc.wantStatus || got.Verified != tc.wantVerif {
			t.Errorf("%s: widened %v status %s verified %v, want %v %s %v", tc.name, widened, got.Status, got.Verified, tc.wantWidened, tc.wantStatus, tc.wantVerif)
		}
		wantConsents := 2
		if tc.wantWidened && !tc.byAdmin {
			wantConsents = 0
		}
		if n := f.consents(c.ID); n != wantConsents {
			t.Errorf("%s: %d consents left, want %d", tc.name, n, wantConsents)
		}
		// The token endpoint sees the new status at once on this node.
		cached, err := f.s.Clients.Get(ctx, c.ID)
		if err != nil || cached.Status != tc.wantStatus {
			t.Errorf("%s: cached client status %v (%v), want %s", tc.name, cached, err, tc.wantStatus)
		}
	}

	// A public patient-level app that widens within patient-level scopes
	// stays enabled but loses the administrator's verification; widening
	// beyond them makes it wait.
	pub := f.create(store.ClientMetadata{TokenEndpointAuthMethod: "none", RedirectURIs: []string{"com.example.app:/cb"}, Scope: "patient/Observation.rs openid"}, Options{})
	if _, err := f.s.Clients.SetStatus(ctx, pub.ID, store.ClientEnabled); err != nil {
		t.Fatal(err)
	}
	f.giveConsent(pub.ID, "alice")
	md := pub.Client.Metadata
	md.Scope += " patient/Condition.rs"
	got, widened, err := f.s.Clients.Update(ctx, pub.ID, md, false)
	if err != nil || !widened || got.Status != store.ClientEnabled || got.Verified {
		t.Errorf("public app widening within patient scopes: %v widened %v status %s verified %v; want widened, enabled, unverified", err, widened, got.Status, got.Verified)
	}
	if n := f.consents(pub.ID); n != 0 {
		t.Errorf("public app widening: %d consents left, want 0", n)
	}
	md.Scope += " user/Condition.rs"
	if got, _, err := f.s.Clients.Update(ctx, pub.ID, md, false); err != nil || got.Status != store.ClientPending {
		t.Errorf("public app widening to user/ scopes: %v status %v, want pending", err, got.Status)
	}
}

// An administrator's "disabled" must survive a self-service update. Today
// Update re-runs the approval policy on any widening, so a disabled public
// patient-level app that adds a redirect URI through RFC 7592 comes back
// enabled, and a disabled confidential client becomes pending. See the
// report; remove the Skip once Update keeps disabled clients disabled.
func TestUpdateKeepsDisabledClientDisabled(t *testing.T) {

	f := newOAuthFixture(t, nil)
	ctx := context.Background()
	pub := f.create(store.ClientMetadata{TokenEndpointAuthMethod: "none", RedirectURIs: []string{"com.example.app:/cb"}, Scope: "patient/*.rs"}, Options{})
	if _, err := f.s.Clients.SetStatus(ctx, pub.ID, store.ClientDisabled); err != nil {
		t.Fatal(err)
	}
	md := pub.Client.Metadata
	md.RedirectURIs = append(md.RedirectURIs, "com.example.app:/other")
	got, _, err := f.s.Clients.Update(ctx, pub.ID, md, false)
	if err != nil || got.Status != store.ClientDisabled {
		t.Errorf("disabled client after widening its own registration: status %v, %v; want disabled", got.Status, err)
	}
}
