package identity

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"smartgate/internal/problem"
	"smartgate/internal/store"
)

func TestCheckFHIRUser(t *testing.T) {
	for _, tc := range []struct {
		role, ref string
		ok        bool
	}{
		{store.RolePractitioner, "Practitioner/pra-ines-munoz", true},
		{store.RolePractitioner, "", true},
		{store.RolePractitioner, "Patient/pat-amy-shaw", false},
		{store.RolePractitioner, "PractitionerRole/x", false},
		{store.RolePatient, "Patient/pat-amy-shaw", true},
		{store.RolePatient, "Practitioner/pra-ines-munoz", false},
		{store.RolePatient, "RelatedPerson/rp1", false},
		{store.RoleRelatedPerson, "RelatedPerson/rp1", true},
		{store.RoleRelatedPerson, "Patient/p1", false},
		{store.RoleAdmin, "", true},
		{store.RoleAdmin, "Practitioner/a.b-c", true},
		{store.RoleAdmin, "Patient/p1", false},
		{store.RolePatient, "Patient/", false},
		{store.RolePatient, "Patient/a/b", false},
		{store.RolePatient, "Patient/a_b", false},
		{store.RolePatient, "https://ehr.example.org/fhir/Patient/p1", false},
		{store.RolePatient, "patient/p1", false},
		{store.RolePatient, "Patient/" + strings.Repeat("x", 65), false},
	} {
		err := CheckFHIRUser(tc.role, tc.ref)
		if (err == nil) != tc.ok {
			t.Errorf("CheckFHIRUser(%s, %q) = %v; want ok %v", tc.role, tc.ref, err, tc.ok)
		}
	}
}

func TestCheckUsername(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"ines", true}, {"Ines.Munoz", true}, {"ines.munoz+ehr@example.org", true}, {"a", true}, {"0xdead", true},
		{"", false}, {".ines", false}, {"-ines", false}, {"in es", false}, {"inés", false}, {"ines/../x", false},
		{strings.Repeat("a", 64), true}, {strings.Repeat("a", 65), false},
	} {
		if err := CheckUsername(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckUsername(%q) = %v; want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestCreateUser(t *testing.T) {
	f := newFixture(t, nil)
	c := ctx(t)
	u := f.user(t, "Ines.Munoz", store.RolePractitioner, "Practitioner/pra-ines-munoz")
	if !strings.HasPrefix(u.ID, "u-") || len(u.ID) != 28 || u.Status != store.UserEnabled || !u.CreatedAt.Equal(f.clk.now()) {
		t.Errorf("created %+v", u)
	}
	if ok, _ := testHasher.VerifyPassword(c, u.PasswordHash, goodPassword); !ok {
		t.Errorf("the stored hash does not verify the password")
	}
	got, err := f.st.GetUserByUsername(c, "ines.munoz")
	if err != nil || !cmp.Equal(u, got) {
		t.Errorf("stored user (-want +got):\n%s (%v)", cmp.Diff(u, got), err)
	}
	if e := f.rec.last(); e.Action != "user.create" || e.Actor != "cli" || !strings.Contains(e.Detail, u.ID) || strings.Contains(e.Detail, "argon2") {
		t.Errorf("audit event %+v", e)
	}
	for _, tc := range []struct {
		name string
		nu   NewUser
		id   problem.ID
	}{
		{"taken, other case", NewUser{Username: "INES.munoz", Role: store.RolePatient, Password: goodPassword}, problem.UserExists},
		{"short password", NewUser{Username: "amy", Role: store.RolePatient, Password: "short"}, problem.PasswordRejected},
		{"password is the username", NewUser{Username: "amy.shaw.patient", Role: store.RolePatient, Password: "Amy.Shaw.Patient"}, problem.PasswordRejected},
		{"unknown role", NewUser{Username: "amy", Role: "nurse", Password: goodPassword}, problem.InvalidRequest},
		{"wrong fhirUser type", NewUser{Username: "amy", Role: store.RolePatient, FHIRUser: "Practitioner/x", Password: goodPassword}, problem.InvalidRequest},
		{"bad username", NewUser{Username: "amy shaw", Role: store.RolePatient, Password: goodPassword}, problem.InvalidRequest},
	} {
		_, err := f.svc.CreateUser(c, tc.nu, "cli")
		if !problem.IsID(err, tc.id) {
			t.Errorf("%s: CreateUser = %v, want %s", tc.name, err, tc.id)
		}
	}
	// The dev demo users may have short passwords; nobody else.
	if _, err := f.svc.CreateUser(c, NewUser{Username: "demo", Role: store.RoleAdmin, Password: "pw", WeakPasswordOK: true}, "system"); err != nil {
		t.Errorf("a weak password with WeakPasswordOK: %v", err)
	}
	if _, err := f.svc.UserByName(c, "nobody"); !problem.IsID(err, problem.NotFound) {
		t.Errorf("UserByName(unknown) = %v, want not_found", err)
	}
}

func TestDisableEndsSessionsAndTokens(t *testing.T) {
	f := newFixture(t, nil)
	c := ctx(t)
	u := f.user(t, "ines", store.RolePractitioner, "")
	l, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	sid, _, err := f.svc.CreateSession(c, l)
	if err != nil {
		t.Fatal(err)
	}
	revsBefore, _ := f.st.RevocationsAfter(c, 0, f.clk.now())
	f.clk.add(time.Minute)
	out, err := f.svc.SetStatus(c, u, store.UserDisabled, "cli")
	if err != nil || out.Status != store.UserDisabled {
		t.Fatalf("SetStatus(disabled) = %+v, %v", out, err)
	}
	if _, _, err := f.svc.LookupSession(c, sid); !errors.Is(err, ErrNoSession) {
		t.Errorf("session of a disabled user: %v, want ErrNoSession", err)
	}
	sess, _ := f.st.GetLoginSession(c, SessionHash(sid))
	if sess.RevokedAt.IsZero() {
		t.Errorf("disabling did not revoke the session")
	}
	revs, _ := f.st.RevocationsAfter(c, 0, f.clk.now())
	if len(revs) != len(revsBefore)+1 {
		t.Fatalf("revocations after disable: %+v", revs)
	}
	r := revs[len(revs)-1]
	if r.Kind != store.RevokeSubject || r.Value != u.ID || !r.RevokedAt.Equal(f.clk.now()) || !r.ExpiresAt.Equal(f.clk.now().Add(time.Hour)) {
		t.Errorf("revocation %+v; want subject %s revoked now until now + the token lifetime", r, u.ID)
	}
	if _, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.1"); !problem.IsID(err, problem.LoginFailed) {
		t.Errorf("login of a disabled user = %v, want login_failed", err)
	}
	if _, err := f.svc.SetStatus(c, u, store.UserEnabled, "cli"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.1"); err != nil {
		t.Errorf("login after enable: %v", err)
	}
	if got := f.rec.actions(); !cmp.Equal(got[len(got)-4:], []string{"user.disable", "login.failure", "user.enable", "login.success"}) {
		t.Errorf("audit actions %v", got)
	}
}

func TestSetPasswordEndsSessions(t *testing.T) {
	f := newFixture(t, nil)
	c := ctx(t)
	u := f.user(t, "ines", store.RolePractitioner, "")
	l, _ := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.1")
	sid, _, _ := f.svc.CreateSession(c, l)
	if err := f.svc.SetPassword(c, u, "short", "cli"); !problem.IsID(err, problem.PasswordRejected) {
		t.Errorf("SetPassword(short) = %v, want password_rejected", err)
	}
	if err := f.svc.SetPassword(c, u, "a new long passphrase", "cli"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.LookupSession(c, sid); !errors.Is(err, ErrNoSession) {
		t.Errorf("session survived a password change: %v", err)
	}
	if _, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.1"); !problem.IsID(err, problem.LoginFailed) {
		t.Errorf("the old password still works: %v", err)
	}
	if _, err := f.svc.Authenticate(c, "ines", "a new long passphrase", "192.0.2.1"); err != nil {
		t.Errorf("the new password: %v", err)
	}
}

func TestLink(t *testing.T) {
	f := newFixture(t, nil)
	c := ctx(t)
	u := f.user(t, "ines", store.RolePractitioner, "")
	v := f.user(t, "amy", store.RolePatient, "")
	if _, err := f.svc.Link(c, u, "keycloak", "8c2f-11", "cli"); err != nil {
		t.Fatal(err)
	}
	if got, err := f.st.UserByLink(c, "keycloak", "8c2f-11"); err != nil || got.ID != u.ID {
		t.Errorf("UserByLink = %s, %v", got.ID, err)
	}
	_, err := f.svc.Link(c, v, "keycloak", "8c2f-11", "cli")
	if !problem.IsID(err, problem.UserExists) || !strings.Contains(err.Error(), `"ines"`) {
		t.Errorf("linking a taken identity = %v, want user_exists naming ines", err)
	}
	for _, tc := range []struct{ provider, subject string }{{"Key Cloak", "x"}, {"", "x"}, {"keycloak", ""}, {"keycloak", strings.Repeat("s", 256)}} {
		if _, err := f.svc.Link(c, v, tc.provider, tc.subject, "cli"); !problem.IsID(err, problem.InvalidRequest) {
			t.Errorf("Link(%q, %q) = %v, want invalid_request", tc.provider, tc.subject, err)
		}
	}
	if e := f.rec.last(); e.Action != "user.link" || !strings.Contains(e.Detail, "keycloak") {
		t.Errorf("audit %+v", e)
	}
}
