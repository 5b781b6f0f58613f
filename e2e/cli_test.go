package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	env := baseEnv()
	for _, args := range [][]string{
		{"--help"},
		{"serve", "--help"},
		{"migrate", "--help"},
		{"doctor", "--help"},
		{"key", "--help"},
		{"key", "list", "--help"},
		{"key", "rotate", "--help"},
		{"key", "rewrap", "--help"},
		{"version", "--help"},
	} {
		r := mustRun(t, env, args...)
		usage := "smartgate " + strings.Join(args[:len(args)-1], " ")
		if !containsAll(r.stdout, "Usage:", strings.TrimSpace(usage)) {
			t.Errorf("smartgate %s: no usage line for %q:\n%s", strings.Join(args, " "), usage, r.stdout)
		}
	}
	r := mustRun(t, env, "--help")
	for _, sub := range []string{"serve", "migrate", "doctor", "key", "version"} {
		if !strings.Contains(r.stdout, "\n  "+sub+" ") {
			t.Errorf("smartgate --help does not list %s:\n%s", sub, r.stdout)
		}
	}
	r = mustRun(t, env, "serve", "--help")
	for _, flag := range []string{"--dev", "--listen", "--issuer", "--database", "--data-dir", "--config", "--output"} {
		if !strings.Contains(r.stdout, flag) {
			t.Errorf("serve --help does not mention %s", flag)
		}
	}

	r = mustRun(t, env, "version", "--output", "json")
	var v map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("version --output json: %v\n%s", err, r)
	}
	if v["version"] == "" || !strings.HasPrefix(v["go"], "go") {
		t.Errorf("version --output json: %v; want version and go fields", v)
	}
	r = mustRun(t, env, "version")
	if !strings.HasPrefix(r.stdout, "smartgate "+v["version"]) {
		t.Errorf("version prints %q, want it to start with smartgate %s", r.stdout, v["version"])
	}

	dir := filepath.Join(t.TempDir(), "data")
	r = mustRun(t, env, "key", "list", "--dev", "--data-dir", dir, "--output", "json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("key list --output json is not a JSON array: %v\n%s", err, r)
	}
	if len(list) != 2 {
		t.Errorf("key list on a new data dir: %d keys, want 2", len(list))
	}
	r = mustRun(t, env, "migrate", "--dev", "--data-dir", dir, "--output", "json")
	var m struct {
		Dialect         string `json:"dialect"`
		Version, Latest int
	}
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || m.Dialect != "sqlite" || m.Version != m.Latest || m.Version < 1 {
		t.Errorf("migrate --output json: %+v (%v)\n%s", m, err, r)
	}

	r = smartgate(t, env, "no-such-command")
	if r.code == 0 || !strings.Contains(r.stderr, "unknown command") {
		t.Errorf("an unknown command: want a non-zero exit naming it; got %s", r)
	}
	// (version does not check --output; see the report: it prints text.)
	r = smartgate(t, env, "key", "list", "--dev", "--data-dir", dir, "--output", "yaml")
	if r.code == 0 || !strings.Contains(r.stderr, "--output must be text or json") {
		t.Errorf("--output yaml: want a non-zero exit naming --output; got %s", r)
	}
}
