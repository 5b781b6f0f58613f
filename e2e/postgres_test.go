package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestTwoNodesOnPostgres(t *testing.T) {
	t.Parallel()
	dsn := newPostgresDatabase(t) // skips without PostgreSQL unless required
	env := baseEnv("SMARTGATE_KEK=" + newKEK(t))
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")

	// Both nodes start at once on an empty database: one set of keys must
	// be created, under the lock.
	pa := start(t, env, "serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", dirA, "--database", dsn)
	pb := start(t, env, "serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", dirB, "--database", dsn)
	a, b := waitReady(t, pa), waitReady(t, pb)
	if a.URL == b.URL {
		t.Fatalf("both nodes at %s", a.URL)
	}
	ja, jb := mustJWKS(t, a.URL), mustJWKS(t, b.URL)
	if len(ja.Keys) != 2 {
		t.Errorf("node A JWKS %v, want 2 keys (one set for both nodes)", ja.kids())
	}
	if !reflect.DeepEqual(ja, jb) {
		t.Errorf("the nodes publish different key sets:\nA %+v\nB %+v", ja, jb)
	}
	if list := keyList(t, env, "--dev", "--data-dir", t.TempDir(), "--database", dsn); len(list) != 2 {
		t.Errorf("key list on PostgreSQL: %d keys, want 2: %+v", len(list), list)
	}
	// The KEK came from SMARTGATE_KEK: no KEK file is generated.
	for _, d := range []string{dirA, dirB} {
		if _, err := os.Stat(filepath.Join(d, "kek")); err == nil {
			t.Errorf("a KEK file was written in %s although SMARTGATE_KEK is set", d)
		}
	}

	// A rotation by a third process reaches both nodes.
	added := rotate(t, env, "--dev", "--data-dir", t.TempDir(), "--database", dsn)
	sa := waitJWKSHas(t, a.URL, propagation, kidsOf(added)...)
	sb := waitJWKSHas(t, b.URL, propagation, kidsOf(added)...)
	if len(sa.Keys) != 4 || len(sb.Keys) != 4 {
		t.Errorf("after rotation: node A %v, node B %v; want 4 keys each", sa.kids(), sb.kids())
	}
	if !reflect.DeepEqual(sa, sb) {
		t.Errorf("after rotation the nodes publish different key sets:\nA %v\nB %v", sa.kids(), sb.kids())
	}
	for _, s := range []*server{a, b} {
		if code, status := readyz(t, s.URL); code != http.StatusOK || status != "ready" {
			t.Errorf("%s /readyz: %d %q", s.URL, code, status)
		}
	}
	resp, body := get(t, a.URL+"/metrics")
	if resp.StatusCode != http.StatusOK || !containsAll(string(body), `go_sql_open_connections{db_name="postgres"}`) {
		t.Errorf("node A /metrics lacks the postgres pool metric")
	}
}
