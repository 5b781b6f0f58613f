package identity

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"smartgate/internal/fhir/devdata"
	"smartgate/internal/store"
)

func TestEnsureDevUsers(t *testing.T) {
	f := newFixture(t, nil)
	c := ctx(t)
	path := filepath.Join(t.TempDir(), DevUsersFile)
	users, created, err := f.svc.EnsureDevUsers(c, path)
	if err != nil || !created {
		t.Fatalf("first EnsureDevUsers = created %v, %v", created, err)
	}
	want := []DevUser{
		{Username: "admin", Role: "admin"},
		{Username: "ines.munoz", Role: "practitioner", FHIRUser: "Practitioner/" + devdata.Practitioners()[0]},
		{Username: "amy.shaw", Role: "patient", FHIRUser: "Patient/" + devdata.Patients()[0]},
	}
	if d := cmp.Diff(want, users, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Password" }, cmp.Ignore())); d != "" {
		t.Errorf("demo users (-want +got):\n%s", d)
	}
	if want[1].FHIRUser != "Practitioner/pra-ines-munoz" || want[2].FHIRUser != "Patient/pat-amy-shaw" {
		t.Errorf("the demo records moved: %s, %s", want[1].FHIRUser, want[2].FHIRUser)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v; want 0600", path, err, st.Mode().Perm())
	}
	var raw []map[string]string
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &raw); err != nil || len(raw) != 3 {
		t.Fatalf("dev-users.json: %v\n%s", err, b)
	}
	for _, m := range raw {
		if d := cmp.Diff([]string{"fhirUser", "password", "role", "username"}, keysOf(m)); d != "" {
			t.Errorf("entry members (-want +got):\n%s", d)
		}
	}
	pwRE := regexp.MustCompile(`^[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}$`)
	for _, du := range users {
		if !pwRE.MatchString(du.Password) {
			t.Errorf("%s: password %q", du.Username, du.Password)
		}
		l, err := f.svc.Authenticate(c, du.Username, du.Password, "127.0.0.1")
		if err != nil || l.User.Role != du.Role || l.User.FHIRUser != du.FHIRUser {
			t.Errorf("%s cannot sign in with the file's password: %+v, %v", du.Username, l.User, err)
		}
	}
	if users[0].Password == users[1].Password {
		t.Errorf("demo passwords repeat")
	}

	// A later start reuses the file and changes nothing.
	again, created, err := f.svc.EnsureDevUsers(c, path)
	if err != nil || created || !cmp.Equal(again, users) {
		t.Errorf("second EnsureDevUsers = %v, created %v, %v", again, created, err)
	}
	list, _ := f.st.ListUsers(c)
	if len(list) != 3 {
		t.Errorf("%d users after a second start, want 3", len(list))
	}

	// A new database beside the same file: the users come back with the
	// file's passwords.
	g := newFixture(t, nil)
	if _, created, err := g.svc.EnsureDevUsers(c, path); err != nil || created {
		t.Fatalf("EnsureDevUsers on a new database = created %v, %v", created, err)
	}
	if _, err := g.svc.Authenticate(c, "amy.shaw", users[2].Password, "127.0.0.1"); err != nil {
		t.Errorf("recreated user with the file's password: %v", err)
	}

	// The file deleted: the users exist, get new passwords and a new file.
	os.Remove(path)
	fresh, created, err := f.svc.EnsureDevUsers(c, path)
	if err != nil || !created || fresh[2].Password == users[2].Password {
		t.Fatalf("after deleting the file: created %v, %v", created, err)
	}
	if _, err := f.svc.Authenticate(c, "amy.shaw", fresh[2].Password, "127.0.0.2"); err != nil {
		t.Errorf("new password: %v", err)
	}
	if list, _ := f.st.ListUsers(c); len(list) != 3 {
		t.Errorf("%d users, want the same 3", len(list))
	}
	if u, _ := f.st.GetUserByUsername(c, "admin"); u.Role != store.RoleAdmin || u.FHIRUser != "" {
		t.Errorf("admin %+v", u)
	}
}

func keysOf(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
