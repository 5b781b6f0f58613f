package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// smartgateStdin is smartgate with stdin.
func smartgateStdin(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("smartgate %s: %v", strings.Join(args, " "), err)
	}
	return r
}

type userView struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	Role        string `json:"role"`
	FHIRUser    string `json:"fhir_user"`
	Status      string `json:"status"`
	HasPassword bool   `json:"has_password"`
	TOTP        bool   `json:"totp_enabled"`
}

// TestUserCLI drives the user commands of the real binary on one data dir.
func TestUserCLI(t *testing.T) {
	t.Parallel()
	env := baseEnv()
	dir := filepath.Join(t.TempDir(), "data")
	data := []string{"--dev", "--data-dir", dir}
	create := func(stdin string, args ...string) result {
		return smartgateStdin(t, env, stdin, append(append([]string{"user", "create"}, args...), data...)...)
	}
	r := create("correct horse battery staple\n", "--username", "Alice", "--role", "practitioner", "--fhir-user", "Practitioner/pra-ines-munoz", "--password-stdin", "-o", "json")
	var alice userView
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &alice) != nil || alice.Username != "Alice" || alice.Role != "practitioner" || !alice.HasPassword || alice.Status != "enabled" {
		t.Fatalf("user create: %s", r)
	}
	// Usernames are unique whatever their case; the password never comes
	// from a flag; fhirUser must match the role; short passwords are refused.
	for _, c := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"duplicate", "another long password", []string{"--username", "alice", "--role", "patient", "--password-stdin"}, "user_exists"},
		{"password flag", "", []string{"--username", "bob", "--role", "patient", "--password", "pw"}, "--password-stdin"},
		{"role mismatch", "another long password", []string{"--username", "bob", "--role", "patient", "--fhir-user", "Practitioner/x", "--password-stdin"}, "Patient reference"},
		{"short password", "short", []string{"--username", "bob", "--role", "patient", "--password-stdin"}, "password"},
	} {
		if r := create(c.stdin, c.args...); r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: %s\nwant a failure mentioning %q", c.name, r, c.want)
		}
	}
	list := func() []userView {
		var us []userView
		r := mustRun(t, env, append([]string{"user", "list", "-o", "json"}, data...)...)
		if err := json.Unmarshal([]byte(r.stdout), &us); err != nil {
			t.Fatalf("user list: %v\n%s", err, r)
		}
		return us
	}
	if us := list(); len(us) != 1 || us[0].ID != alice.ID {
		t.Fatalf("user list = %+v, want only alice", us)
	}
	mustRun(t, env, append([]string{"user", "disable", "alice"}, data...)...)
	if us := list(); us[0].Status != "disabled" {
		t.Errorf("after disable: %+v", us[0])
	}
	mustRun(t, env, append([]string{"user", "enable", "alice"}, data...)...)
	if r := smartgateStdin(t, env, "a brand new passphrase\n", append([]string{"user", "set-password", "alice", "--password-stdin"}, data...)...); r.code != 0 {
		t.Errorf("set-password: %s", r)
	}
	// TOTP: enrolment prints an otpauth URL; the secret is sealed under
	// the KEK, and key rewrap re-seals it (a second rewrap can only succeed
	// when the first left it readable under the new KEK).
	r = mustRun(t, env, append([]string{"user", "totp-enroll", "alice", "-o", "json"}, data...)...)
	var enr struct {
		URL    string `json:"otpauth_url"`
		Secret string `json:"secret"`
	}
	if json.Unmarshal([]byte(r.stdout), &enr) != nil || !strings.HasPrefix(enr.URL, "otpauth://totp/") || len(enr.Secret) < 16 {
		t.Fatalf("totp-enroll: %s", r)
	}
	if us := list(); !us[0].TOTP {
		t.Errorf("after totp-enroll: %+v", us[0])
	}
	for i := range 2 {
		r := mustRun(t, env, append([]string{"key", "rewrap", "-o", "json"}, data...)...)
		var rw struct {
			TOTP int `json:"totp_secrets"`
		}
		if json.Unmarshal([]byte(r.stdout), &rw) != nil || rw.TOTP != 1 {
			t.Fatalf("key rewrap %d: %s; want 1 TOTP secret re-sealed", i+1, r)
		}
	}
	db, err := os.ReadFile(filepath.Join(dir, "smartgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(db, []byte(enr.Secret)) {
		t.Error("the TOTP secret is stored in clear in the database file")
	}
}

// TestDevUsers: serve --dev creates the demo users once, writes
// dev-users.json (0600) and prints the passwords on stdout only.
func TestDevUsers(t *testing.T) {
	t.Parallel()
	env := baseEnv()
	dir := filepath.Join(t.TempDir(), "data")
	s := serve(t, env, "--dev", "--listen", "127.0.0.1:0", "--data-dir", dir)
	path := filepath.Join(dir, "dev-users.json")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("dev-users.json: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("dev-users.json mode %04o, want 0600", st.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	var users []struct{ Username, Password, Role, FHIRUser string }
	if err := json.Unmarshal(raw, &users); err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, u := range users {
		roles[u.Role] = u.FHIRUser
		if u.Password == "" {
			t.Errorf("demo user %s has no password in the file", u.Username)
		}
	}
	if len(users) != 3 || roles["practitioner"] != "Practitioner/pra-ines-munoz" || roles["patient"] != "Patient/pat-amy-shaw" {
		t.Errorf("dev users = %+v", users)
	}
	for _, u := range users {
		if !strings.Contains(s.stdout.String(), u.Password) {
			t.Errorf("the password of %s was not printed on stdout", u.Username)
		}
		if strings.Contains(s.stderr.String(), u.Password) {
			t.Errorf("the password of %s is in the log stream", u.Username)
		}
	}
	// A second start reuses them: same users, no new passwords printed.
	s.kill()
	if !s.waitExit(exitTimeout) {
		t.Fatal("the first server did not exit")
	}
	s2 := serve(t, env, "--dev", "--listen", "127.0.0.1:0", "--data-dir", dir)
	raw2, _ := os.ReadFile(path)
	if string(raw2) != string(raw) {
		t.Error("a second start rewrote dev-users.json")
	}
	for _, u := range users {
		if strings.Contains(s2.stdout.String(), u.Password) {
			t.Errorf("a second start printed the password of %s again", u.Username)
		}
	}
}
