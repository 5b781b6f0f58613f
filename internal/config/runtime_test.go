package config

import (
	"strings"
	"testing"
	"time"
)

// TestRuntimeOrder: defaults < file < database < environment < flags, for
// runtime keys only.
func TestRuntimeOrder(t *testing.T) {
	file := writeYAML(t, "tokens:\n  access_token_ttl: 45m\n  refresh_idle_ttl: 48h\nregistration:\n  policy: token\n")
	l, err := Load(Options{File: file, Env: []string{"SMARTGATE_TOKENS_BACKEND_TOKEN_TTL=2m"}, Flags: map[string]string{"dev": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	c, ps := l.WithRuntime(map[string]string{
		"tokens.access_token_ttl":        "30m",  // over the file
		"tokens.backend_token_ttl":       "4m",   // pinned by the environment: skipped
		"registration.policy":            "open", // over the file
		"authorize.password_grant_roles": "patient",
		"log.level":                      "debug", // not a runtime key: skipped
	})
	if got := c.Tokens.AccessTokenTTL.D(); got != 30*time.Minute {
		t.Errorf("access_token_ttl = %s, want 30m from the database (over the file's 45m)", got)
	}
	if got := c.Tokens.BackendTokenTTL.D(); got != 2*time.Minute {
		t.Errorf("backend_token_ttl = %s, want 2m from the environment (pinned)", got)
	}
	if got := c.Tokens.RefreshIdleTTL.D(); got != 48*time.Hour {
		t.Errorf("refresh_idle_ttl = %s, want the file's 48h (no stored value)", got)
	}
	if c.Registration.Policy != "open" || strings.Join(c.Authorize.PasswordGrantRoles, ",") != "patient" {
		t.Errorf("policy %q roles %v, want open and [patient]", c.Registration.Policy, c.Authorize.PasswordGrantRoles)
	}
	if c.Log.Level != "info" {
		t.Errorf("log.level = %q: a non-runtime key was applied", c.Log.Level)
	}
	if len(ps) != 2 {
		t.Fatalf("problems %v, want 2 (the pinned key and the non-runtime key)", ps)
	}
	for _, p := range ps {
		switch p.Key {
		case "tokens.backend_token_ttl":
			if !strings.Contains(p.Message, "SMARTGATE_TOKENS_BACKEND_TOKEN_TTL") {
				t.Errorf("pinned problem does not name the variable: %s", p)
			}
		case "log.level":
			if !strings.Contains(p.Message, "not a runtime setting") {
				t.Errorf("non-runtime problem: %s", p)
			}
		default:
			t.Errorf("unexpected problem %s", p)
		}
	}
	if l.Tokens.AccessTokenTTL.D() != 45*time.Minute {
		t.Errorf("WithRuntime changed the loaded configuration")
	}
	if !l.Pinned("tokens.backend_token_ttl") || l.Pinned("tokens.access_token_ttl") || !l.Pinned("dev") {
		t.Errorf("Pinned: backend %v access %v dev %v; want true false true", l.Pinned("tokens.backend_token_ttl"), l.Pinned("tokens.access_token_ttl"), l.Pinned("dev"))
	}
}

func TestCheckRuntime(t *testing.T) {
	l, err := Load(Options{Flags: map[string]string{"dev": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key, value string
		want       string // "" when accepted; else words of the message
	}{
		{"tokens.access_token_ttl", "20m", ""},
		{"tokens.access_token_ttl", "1h", ""},
		{"tokens.access_token_ttl", "2h", "at most 1h0m0s"},
		{"tokens.access_token_ttl", "0s", "positive duration"},
		{"tokens.access_token_ttl", "soon", "not a duration"},
		{"tokens.backend_token_ttl", "90s", ""},
		{"tokens.refresh_max_ttl", "17520h", ""},
		{"tokens.refresh_idle_ttl", "-1h", "positive"},
		{"registration.policy", "open", ""},
		{"registration.policy", "closed", "open (anyone may register) or token"},
		{"authorize.password_grant_roles", "practitioner,patient", ""},
		{"authorize.password_grant_roles", "", ""},
		{"authorize.password_grant_roles", "admin", "cannot use the password grant"},
		{"issuer", "https://x", "not a runtime setting"},
		{"dev", "false", "not a runtime setting"},
	} {
		p := l.CheckRuntime(tc.key, tc.value)
		switch {
		case tc.want == "" && p != nil:
			t.Errorf("CheckRuntime(%s, %q) = %s, want accepted", tc.key, tc.value, p)
		case tc.want != "" && p == nil:
			t.Errorf("CheckRuntime(%s, %q) accepted, want a problem saying %q", tc.key, tc.value, tc.want)
		case tc.want != "" && !strings.Contains(p.Message, tc.want):
			t.Errorf("CheckRuntime(%s, %q) = %s, want it to say %q", tc.key, tc.value, p, tc.want)
		case p != nil && p.Key != tc.key:
			t.Errorf("CheckRuntime(%s, %q) names key %s", tc.key, tc.value, p.Key)
		}
	}
}

func TestValue(t *testing.T) {
	c := Default()
	c.Authorize.PasswordGrantRoles = []string{"practitioner", "patient"}
	for key, want := range map[string]string{
		"tokens.access_token_ttl":        "1h0m0s",
		"authorize.password_grant_roles": "practitioner,patient",
		"rate_limits.enabled":            "true",
		"audit.batch_size":               "256",
		"data_dir":                       "./smartgate-data",
		"nope.key":                       "",
	} {
		if got := c.Value(key); got != want {
			t.Errorf("Value(%s) = %q, want %q", key, got, want)
		}
	}
}

// TestRuntimeKeysExist: every runtime key is a real key.
func TestRuntimeKeysExist(t *testing.T) {
	known := map[string]bool{}
	for _, k := range AllKeys() {
		known[k.Name] = true
	}
	for _, k := range RuntimeKeys {
		if !known[k] {
			t.Errorf("runtime key %s is not a configuration key", k)
		}
	}
}

func TestLive(t *testing.T) {
	a, b := Default(), Default()
	b.Registration.Policy = "open"
	l := NewLive(&a)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ {
			_ = l.Load().Registration.Policy
		}
		close(done)
	}()
	l.Store(&b)
	<-done
	if l.Load().Registration.Policy != "open" {
		t.Errorf("Load after Store = %q", l.Load().Registration.Policy)
	}
}
