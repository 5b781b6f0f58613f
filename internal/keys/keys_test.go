package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"smartgate/internal/problem"
	"smartgate/internal/store/sqlstore"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newStore(t *testing.T) (*sqlstore.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.db")
	st, err := sqlstore.Open(context.Background(), path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st, path
}

func mustKEK(t *testing.T) *KEK {
	k, err := ParseKEK(GenerateKEK(), "test")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newManager(st *sqlstore.DB, kek *KEK, c *clock) *Manager {
	return New(st, Options{
		JWKSMaxAge: 15 * time.Minute, MaxTokenLifetime: time.Hour, Clock: c.now,
		LoadKEK: func() (*KEK, error) { return kek, nil },
	})
}

func jwks(t *testing.T, m *Manager) jose.JSONWebKeySet {
	t.Helper()
	b, err := m.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	for _, private := range []string{`"d"`, `"p"`, `"q"`, `"dp"`, `"dq"`, `"qi"`, `"k"`} {
		if bytes.Contains(b, []byte(private)) {
			t.Fatalf("JWKS contains private member %s: %s", private, b)
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	return set
}

func kids(set jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

func TestInitCreatesOneSetAndSigns(t *testing.T) {
	st, _ := newStore(t)
	kek := mustKEK(t)
	c := &clock{t: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	m := newManager(st, kek, c)
	if err := m.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A second node's Init finds the keys and creates none.
	m2 := newManager(st, kek, c)
	if err := m2.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	set := jwks(t, m2)
	if len(set.Keys) != 2 {
		t.Fatalf("JWKS has %d keys (%v), want 2", len(set.Keys), kids(set))
	}
	seen := map[string]bool{}
	for _, k := range set.Keys {
		if k.KeyID == "" || seen[k.KeyID] {
			t.Errorf("kid %q empty or duplicate", k.KeyID)
		}
		seen[k.KeyID] = true
		if !k.IsPublic() || k.Use != "sig" {
			t.Errorf("key %s: public=%v use=%q", k.KeyID, k.IsPublic(), k.Use)
		}
	}
	for _, alg := range Algs {
		k, err := m.Signer(alg)
		if err != nil {
			t.Fatalf("Signer(%s): %v", alg, err)
		}
		// A JWT signed by the node verifies with the published JWKS.
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: jose.JSONWebKey{Key: k.Private, KeyID: k.KID}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		jws, err := signer.Sign([]byte(`{"sub":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		compact, _ := jws.CompactSerialize()
		parsed, err := jose.ParseSigned(compact, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
		if err != nil {
			t.Fatal(err)
		}
		pub := set.Key(parsed.Signatures[0].Header.KeyID)
		if len(pub) != 1 {
			t.Fatalf("kid %s not in the JWKS", k.KID)
		}
		if _, err := parsed.Verify(pub[0]); err != nil {
			t.Errorf("%s signature does not verify with the JWKS: %v", alg, err)
		}
	}
}

func TestRotationLifecycle(t *testing.T) {
	st, _ := newStore(t)
	c := &clock{t: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	m := newManager(st, mustKEK(t), c)
	ctx := context.Background()
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	old, _ := m.Signer(ES256)
	created, err := m.Rotate(ctx, []string{ES256})
	if err != nil || len(created) != 1 {
		t.Fatalf("Rotate = %v, %v", created, err)
	}
	next := created[0].KID
	// Published at once, not signing until the JWKS max-age has passed.
	if got := kids(jwks(t, m)); !contains(got, next) || !contains(got, old.KID) {
		t.Fatalf("after rotate JWKS kids = %v, want old %s and next %s", got, old.KID, next)
	}
	if s, _ := m.Signer(ES256); s.KID != old.KID {
		t.Errorf("new key signs before the publish period: signer %s", s.KID)
	}
	c.add(15*time.Minute - time.Second)
	if s, _ := m.Signer(ES256); s.KID != old.KID {
		t.Errorf("new key signs 1s before the publish period ends")
	}
	c.add(time.Second)
	if s, _ := m.Signer(ES256); s.KID != next {
		t.Errorf("after the publish period the signer is %s, want %s", s.KID, next)
	}
	// The retired key stays published for the longest token lifetime.
	c.add(time.Hour - time.Second)
	if got := kids(jwks(t, m)); !contains(got, old.KID) {
		t.Errorf("retired key unpublished before the longest token lifetime passed")
	}
	states := map[string]State{}
	for _, i := range m.List() {
		states[i.KID] = i.State
	}
	if states[old.KID] != StateRetired || states[next] != StateActive {
		t.Errorf("states = %v", states)
	}
	c.add(time.Second)
	if got := kids(jwks(t, m)); contains(got, old.KID) || len(got) != 2 {
		t.Errorf("after expiry JWKS kids = %v, want the new ES256 and the RS256 key", got)
	}
}

func TestRewrap(t *testing.T) {
	st, _ := newStore(t)
	c := &clock{t: time.Now()}
	ctx := context.Background()
	oldKEK, newKEK := mustKEK(t), mustKEK(t)
	m := newManager(st, oldKEK, c)
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	before := kids(jwks(t, m))
	n, err := m.Rewrap(ctx, newKEK)
	if err != nil || n != 2 {
		t.Fatalf("Rewrap = %d, %v; want 2", n, err)
	}
	stored, _ := st.ListSigningKeys(ctx)
	for _, k := range stored {
		if k.KEKID != newKEK.ID {
			t.Errorf("key %s still sealed under %s", k.KID, k.KEKID)
		}
	}
	// A node with the old KEK cannot open the keys, and says why.
	stale := newManager(st, oldKEK, c)
	if err := stale.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := stale.LoadError(); !problem.IsID(err, problem.KEKMismatch) {
		t.Errorf("old-KEK node LoadError = %v, want kek_mismatch", err)
	}
	if _, err := stale.Signer(ES256); !problem.IsID(err, problem.SigningKeyUnavailable) {
		t.Errorf("old-KEK node Signer error = %v", err)
	}
	// A node with the new KEK opens them; the keys themselves are the same.
	fresh := newManager(st, newKEK, c)
	if err := fresh.Init(ctx); err != nil || fresh.LoadError() != nil {
		t.Fatalf("new-KEK node: %v, %v", err, fresh.LoadError())
	}
	if after := kids(jwks(t, fresh)); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("rewrap changed the keys: %v -> %v", before, after)
	}
	// Rewrap with a KEK that opens nothing changes nothing.
	if _, err := stale.Rewrap(ctx, mustKEK(t)); !problem.IsID(err, problem.KEKMismatch) {
		t.Errorf("rewrap from the wrong KEK = %v, want kek_mismatch", err)
	}
	again, _ := st.ListSigningKeys(ctx)
	for i := range again {
		if !bytes.Equal(again[i].PrivateEnc, stored[i].PrivateEnc) {
			t.Errorf("a failed rewrap modified key %s", again[i].KID)
		}
	}
}

// A running node whose KEK file is replaced (key rewrap) re-reads it when a
// new key does not open under the KEK it holds.
func TestReloadRereadsKEK(t *testing.T) {
	st, _ := newStore(t)
	c := &clock{t: time.Now()}
	ctx := context.Background()
	current := mustKEK(t)
	var mu sync.Mutex
	node := New(st, Options{JWKSMaxAge: time.Minute, MaxTokenLifetime: time.Hour, Clock: c.now,
		LoadKEK: func() (*KEK, error) { mu.Lock(); defer mu.Unlock(); return current, nil }})
	if err := node.Init(ctx); err != nil {
		t.Fatal(err)
	}
	cli := newManager(st, current, c)
	if err := cli.Init(ctx); err != nil {
		t.Fatal(err)
	}
	next := mustKEK(t)
	if _, err := cli.Rewrap(ctx, next); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	current = next // the operator's file now holds the new KEK
	mu.Unlock()
	if _, err := cli.Rotate(ctx, []string{ES256}); err != nil {
		t.Fatal(err)
	}
	if err := node.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := node.LoadError(); err != nil {
		t.Errorf("node did not pick up the new KEK: %v", err)
	}
	if node.KEKID() != next.ID {
		t.Errorf("node KEK %s, want %s", node.KEKID(), next.ID)
	}
}

func TestKEKFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kek")
	if err := WriteKEKFile(path, GenerateKEK(), true); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("KEK file mode %o, want 600", st.Mode().Perm())
	}
	if err := WriteKEKFile(path, GenerateKEK(), true); err == nil {
		t.Errorf("exclusive write over an existing KEK file succeeded")
	}
	if _, err := LoadKEKFile(path); err != nil {
		t.Errorf("LoadKEKFile: %v", err)
	}
	os.Chmod(path, 0o644)
	_, err := LoadKEKFile(path)
	if !problem.IsID(err, problem.KEKPermissions) || !strings.Contains(problem.From(err).Description, "chmod 600 "+path) {
		t.Errorf("world-readable KEK: %v, want kek_permissions naming chmod 600", err)
	}
	os.Chmod(path, 0o640)
	if _, err := LoadKEKFile(path); !problem.IsID(err, problem.KEKPermissions) {
		t.Errorf("group-readable KEK accepted: %v", err)
	}
	if _, err := LoadKEKFile(filepath.Join(dir, "missing")); !problem.IsID(err, problem.KEKMissing) {
		t.Errorf("missing KEK file: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("c2hvcnQ=\n"), 0o600)
	if _, err := LoadKEKFile(bad); !problem.IsID(err, problem.KEKInvalid) {
		t.Errorf("short KEK: %v, want kek_invalid", err)
	}
}

func TestSealBindsKID(t *testing.T) {
	k := mustKEK(t)
	sealed, err := k.Seal("kid-a", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := k.Open("kid-a", sealed); err != nil || string(pt) != "secret" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := k.Open("kid-b", sealed); err == nil {
		t.Errorf("a sealed key opened under another kid")
	}
	if _, err := mustKEK(t).Open("kid-a", sealed); err == nil {
		t.Errorf("a sealed key opened under another KEK")
	}
	if _, err := k.Open("kid-a", sealed[:5]); err == nil {
		t.Errorf("a truncated sealed key opened")
	}
}

func FuzzParseKEK(f *testing.F) {
	f.Add(GenerateKEK())
	f.Add("")
	f.Add("not base64!!")
	f.Add("AAAA")
	f.Add(strings.Repeat("A", 44))
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKEK(s, "fuzz")
		if err != nil {
			if !problem.IsID(err, problem.KEKInvalid) {
				t.Fatalf("error %v is not kek_invalid", err)
			}
			return
		}
		sealed, err := k.Seal("x", []byte("y"))
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := k.Open("x", sealed); err != nil || string(pt) != "y" {
			t.Fatalf("round trip failed: %q %v", pt, err)
		}
	})
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
