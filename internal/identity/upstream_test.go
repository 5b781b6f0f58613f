package identity

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"smartgate/internal/config"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

func TestClaimsIdentity(t *testing.T) {
	p := config.Provider{ID: "kc", Claims: config.ProviderClaims{Email: "mail", FHIRUser: "fhir_user", Role: "realm_access.roles", Groups: "groups",
		GroupRoles: map[string]string{"/clinicians": "practitioner", "/admins": "admin", "nurse": "practitioner"}}}
	tests := []struct {
		name   string
		claims map[string]any
		want   UpstreamIdentity
	}{
		{"nothing", map[string]any{}, UpstreamIdentity{Provider: "kc", Subject: "s1"}},
		{"email verified as bool", map[string]any{"mail": " ann@example.org ", "email_verified": true, "fhir_user": "Patient/p1", "amr": []any{"pwd", "otp", "bad value"}},
			UpstreamIdentity{Provider: "kc", Subject: "s1", Email: "ann@example.org", EmailVerified: true, FHIRUser: "Patient/p1", AMR: []string{"pwd", "otp"}}},
		{"email verified as string", map[string]any{"mail": "ann@example.org", "email_verified": "true"},
			UpstreamIdentity{Provider: "kc", Subject: "s1", Email: "ann@example.org", EmailVerified: true}},
		{"email not verified", map[string]any{"mail": "ann@example.org", "email_verified": "yes"},
			UpstreamIdentity{Provider: "kc", Subject: "s1", Email: "ann@example.org"}},
		{"nested role claim, mapped and by name", map[string]any{"realm_access": map[string]any{"roles": []any{"offline_access", "nurse"}}},
			UpstreamIdentity{Provider: "kc", Subject: "s1", Role: "practitioner"}},
		{"role name as a string", map[string]any{"realm_access": map[string]any{"roles": "patient"}},
			UpstreamIdentity{Provider: "kc", Subject: "s1", Role: "patient"}},
		{"admin wins over practitioner", map[string]any{"groups": []any{"/clinicians", "/admins", "/other"}},
			UpstreamIdentity{Provider: "kc", Subject: "s1", Role: "admin"}},
		{"unmapped groups give nothing", map[string]any{"groups": []any{"admin", "/other"}},
			UpstreamIdentity{Provider: "kc", Subject: "s1"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, ClaimsIdentity(p, "s1", tt.claims)); diff != "" {
			t.Errorf("%s: (-want +got):\n%s", tt.name, diff)
		}
	}
}

func provider(mod func(*config.Provider)) config.Provider {
	p := config.Provider{ID: "kc", Name: "Hospital login", Issuer: "https://kc.example.org", ClientID: "c", ClientSecret: "s"}
	if mod != nil {
		mod(&p)
	}
	return p
}

// TestUpstreamLoginLinking walks the linking rules: a stored link, a
// verified email matching a username, provisioning, and the refusals.
func TestUpstreamLoginLinking(t *testing.T) {
	f := newFixture(t, nil)
	c := ctx(t)
	ann := f.user(t, "ann@example.org", store.RolePatient, "Patient/p-ann")
	bob := f.user(t, "bob", store.RolePractitioner, "Practitioner/pr-bob")
	if _, err := f.svc.Link(c, bob, "kc", "sub-bob", "cli"); err != nil {
		t.Fatal(err)
	}
	matching := provider(func(p *config.Provider) { p.MatchClaim = "email" })

	// A stored link.
	l, err := f.svc.UpstreamLogin(c, provider(nil), UpstreamIdentity{Provider: "kc", Subject: "sub-bob", AMR: []string{"pwd"}}, "10.0.0.1")
	if err != nil || l.User.ID != bob.ID || l.NeedTOTP || !cmp.Equal(l.AMR, []string{"pwd"}) {
		t.Fatalf("linked login: %+v, %v; want bob, no TOTP, amr [pwd]", l, err)
	}
	if ev := f.rec.last(); ev.Action != "login.success" || !strings.Contains(ev.Detail, `"how":"link"`) || !strings.Contains(ev.Detail, `"provider":"kc"`) {
		t.Errorf("audit after a linked login: %+v", ev)
	}

	// Without match_claim, a verified email equal to a username is not enough.
	_, err = f.svc.UpstreamLogin(c, provider(nil), UpstreamIdentity{Subject: "sub-ann", Email: "ann@example.org", EmailVerified: true}, "")
	var nl *NotLinkedError
	if !errors.As(err, &nl) || nl.Subject != "sub-ann" || !strings.Contains(strings.Join(nl.Reasons, " "), "match_claim is none") {
		t.Fatalf("match_claim none: %v, want NotLinkedError naming match_claim", err)
	}
	if pe := nl.Problem(); pe.ID != problem.UpstreamNotLinked || !strings.Contains(pe.Description, "smartgate user link --username USERNAME --provider kc --subject sub-ann") {
		t.Errorf("not-linked problem: %+v", pe)
	}
	if ev := f.rec.last(); ev.Action != "login.failure" || !strings.Contains(ev.Detail, "not_linked") {
		t.Errorf("audit after a refused login: %+v", ev)
	}

	// An unverified email never matches.
	_, err = f.svc.UpstreamLogin(c, matching, UpstreamIdentity{Subject: "sub-ann", Email: "ann@example.org"}, "")
	if !errors.As(err, &nl) || !strings.Contains(strings.Join(nl.Reasons, " "), "verified") {
		t.Fatalf("unverified email: %v, want NotLinkedError about verification", err)
	}

	// A verified one does, and the link is stored.
	l, err = f.svc.UpstreamLogin(c, matching, UpstreamIdentity{Subject: "sub-ann", Email: "ANN@example.org", EmailVerified: true}, "")
	if err != nil || l.User.ID != ann.ID {
		t.Fatalf("matching by verified email: %+v, %v", l.User, err)
	}
	if u, err := f.st.UserByLink(c, "kc", "sub-ann"); err != nil || u.ID != ann.ID {
		t.Errorf("the match was not stored as a link: %+v, %v", u, err)
	}
	// A second identity of the same provider with the same email does not
	// take the user over.
	_, err = f.svc.UpstreamLogin(c, matching, UpstreamIdentity{Subject: "sub-ann-2", Email: "ann@example.org", EmailVerified: true}, "")
	if !errors.As(err, &nl) || !strings.Contains(strings.Join(nl.Reasons, " "), "another") {
		t.Fatalf("second identity with a matched email: %v", err)
	}
}

func TestUpstreamLoginProvisioning(t *testing.T) {
	f := newFixture(t, nil)
	c := ctx(t)
	prov := provider(func(p *config.Provider) {
		p.Provisioning = config.Provisioning{Enabled: true, EmailDomains: []string{"example.org"}}
		p.Claims.Groups = "groups"
		p.Claims.GroupRoles = map[string]string{"clinicians": "practitioner", "admins": "admin"}
	})

	// Provisioning with the default role and the fhirUser claim.
	l, err := f.svc.UpstreamLogin(c, prov, UpstreamIdentity{Subject: "s-cy", Email: "cy@example.org", EmailVerified: true, FHIRUser: "Patient/p-cy", Role: "practitioner"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if u := l.User; u.Username != "cy@example.org" || u.Role != store.RolePatient || u.FHIRUser != "Patient/p-cy" || u.PasswordHash != "" {
		t.Errorf("provisioned user %+v; want cy@example.org, patient (roles untrusted), Patient/p-cy, no password", u)
	}
	if acts := f.rec.actions(); !containsSeq(acts, "user.create", "user.link", "login.success") {
		t.Errorf("audit actions %v", acts)
	}

	// Refusals: domain, unverified, bad fhirUser for the role, bad username.
	for _, tc := range []struct {
		name string
		id   UpstreamIdentity
		want problem.ID
		say  string
	}{
		{"other domain", UpstreamIdentity{Subject: "s1", Email: "dan@example.com", EmailVerified: true}, problem.UpstreamNotLinked, "only for example.org addresses"},
		{"subdomain", UpstreamIdentity{Subject: "s1", Email: "dan@mail.example.org", EmailVerified: true}, problem.UpstreamNotLinked, "only for example.org"},
		{"unverified", UpstreamIdentity{Subject: "s1", Email: "dan@example.org"}, problem.UpstreamNotLinked, "verified"},
		{"no email", UpstreamIdentity{Subject: "s1"}, problem.UpstreamNotLinked, "no email"},
		{"fhirUser of another type", UpstreamIdentity{Subject: "s1", Email: "dan@example.org", EmailVerified: true, FHIRUser: "Practitioner/x"}, problem.UpstreamClaimsInvalid, "Practitioner/x"},
		{"email too long", UpstreamIdentity{Subject: "s1", Email: strings.Repeat("d", 60) + "@example.org", EmailVerified: true}, problem.UpstreamClaimsInvalid, "cannot be a username"},
	} {
		_, err := f.svc.UpstreamLogin(c, prov, tc.id, "")
		pe := problem.From(err)
		var nl *NotLinkedError
		if errors.As(err, &nl) {
			pe = nl.Problem()
		}
		if pe.ID != tc.want || !strings.Contains(pe.Description, tc.say) {
			t.Errorf("%s: %v; want %s saying %q", tc.name, err, tc.want, tc.say)
		}
	}

	// Trusted roles: the group decides at provisioning and later logins; an
	// administrator must then enter a local TOTP code.
	trusted := prov
	trusted.TrustRoles = true
	l, err = f.svc.UpstreamLogin(c, trusted, UpstreamIdentity{Subject: "s-eve", Email: "eve@example.org", EmailVerified: true, FHIRUser: "Practitioner/pr-eve", Role: "practitioner"}, "")
	if err != nil || l.User.Role != store.RolePractitioner {
		t.Fatalf("trusted provisioning: %+v, %v", l.User, err)
	}
	_, err = f.svc.UpstreamLogin(c, trusted, UpstreamIdentity{Subject: "s-eve", Role: "admin"}, "")
	if !problem.IsID(err, problem.TOTPEnrollmentRequired) || !strings.Contains(problem.From(err).Description, "totp-enroll --username eve@example.org") {
		t.Fatalf("admin from a trusted group without TOTP: %v, want totp_enrollment_required", err)
	}
	eve, _ := f.st.GetUserByUsername(c, "eve@example.org")
	if eve.Role != store.RoleAdmin {
		t.Errorf("eve's role after the trusted admin group: %s", eve.Role)
	}
	if _, err := f.svc.EnrollTOTP(c, eve, "cli"); err != nil {
		t.Fatal(err)
	}
	if err := f.st.UpdateUser(c, eve.ID, func(u *store.User) error { u.TOTPEnabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	l, err = f.svc.UpstreamLogin(c, trusted, UpstreamIdentity{Subject: "s-eve", Role: "admin", AMR: []string{"pwd"}}, "")
	if err != nil || !l.NeedTOTP {
		t.Fatalf("admin with TOTP: %+v, %v; want NeedTOTP", l, err)
	}
	if _, _, err := f.svc.CreateSession(c, l); err == nil {
		t.Error("CreateSession accepted an upstream admin login that still owes its TOTP code")
	}
	// Untrusted, the group changes nothing.
	l, err = f.svc.UpstreamLogin(c, prov, UpstreamIdentity{Subject: "s-cy", Role: "admin"}, "")
	if err != nil || l.User.Role != store.RolePatient {
		t.Errorf("untrusted admin group: %+v, %v; want the patient role kept", l.User, err)
	}

	// A disabled user is refused, naming the fix.
	cy, _ := f.st.GetUserByUsername(c, "cy@example.org")
	if _, err := f.svc.SetStatus(c, cy, store.UserDisabled, "cli"); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.UpstreamLogin(c, prov, UpstreamIdentity{Subject: "s-cy"}, "")
	if !problem.IsID(err, problem.UpstreamAccountDisabled) || !strings.Contains(problem.From(err).Description, "smartgate user enable cy@example.org") {
		t.Errorf("disabled user: %v", err)
	}
}

// containsSeq reports whether want appear in got in this order.
func containsSeq(got []string, want ...string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}
