package e2e

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// propagation bounds how long a running server may take to see a change
// made by another process (the design promises about a second).
const propagation = 5 * time.Second

func TestRotationPropagatesToRunningServer(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	env := baseEnv()
	s := serve(t, env, "--dev", "--listen", "127.0.0.1:0", "--data-dir", dir)
	before := mustJWKS(t, s.URL)
	if len(before.Keys) != 2 {
		t.Fatalf("JWKS before rotation: %v, want 2 keys", before.kids())
	}

	added := rotate(t, env, "--dev", "--data-dir", dir) // a separate process
	set := waitJWKSHas(t, s.URL, propagation, kidsOf(added)...)
	if len(set.Keys) != 4 {
		t.Fatalf("JWKS after rotation: %v, want 4 keys (2 old, 2 new)", set.kids())
	}
	for _, kid := range before.kids() {
		if !set.has(kid) {
			t.Errorf("old key %s left the JWKS at rotation; it must stay published", kid)
		}
	}
	for _, k := range added {
		if !k.ActiveAt.After(time.Now()) {
			t.Errorf("new %s key %s signs from %s: it must be published before it signs", k.Alg, k.KID, k.ActiveAt)
		}
	}
	// The command line's rotation is in the audit trail, as the
	// console's is: key.rotate by the administrator "cli", naming the
	// new keys (written before the command exits).
	rotations := auditOf(t, dir, "key.rotate")
	if len(rotations) != 1 || rotations[0].Actor != "cli" || rotations[0].Outcome != "success" ||
		!strings.Contains(rotations[0].Detail, added[0].KID) || !strings.Contains(rotations[0].Detail, added[1].KID) || !strings.Contains(rotations[0].Detail, `"via":"cli"`) {
		t.Errorf("key.rotate events %+v, want one by cli (via cli) naming %v", rotations, kidsOf(added))
	}

	list := keyList(t, env, "--dev", "--data-dir", dir)
	if len(list) != 4 {
		t.Fatalf("key list: %d keys, want 4: %+v", len(list), list)
	}
	states := map[string]string{}
	for _, k := range list {
		states[k.KID] = k.State
		if !k.Usable {
			t.Errorf("key list: key %s is not usable", k.KID)
		}
	}
	for _, k := range added {
		if states[k.KID] != "next" {
			t.Errorf("key list: new key %s has state %q, want next", k.KID, states[k.KID])
		}
	}
	for _, kid := range before.kids() {
		if states[kid] != "active" {
			t.Errorf("key list: old key %s has state %q, want active (the new one does not sign yet)", kid, states[kid])
		}
	}
	if code, status := readyz(t, s.URL); code != http.StatusOK {
		t.Errorf("/readyz after rotation: %d %s", code, status)
	}
}

func TestKillDashNineLeavesHealthyDatabase(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	env := baseEnv()
	s := serve(t, env, "--dev", "--listen", "127.0.0.1:0", "--data-dir", dir)
	first := mustJWKS(t, s.URL)

	var (
		mu        sync.Mutex
		inflight  = map[*proc]bool{}
		succeeded [][]rotated // key sets of rotations that reported success
		killed    int
	)
	killInflight := func() {
		mu.Lock()
		defer mu.Unlock()
		for p := range inflight {
			if !p.exited() {
				killed++
			}
			p.kill()
		}
	}
	startAt := time.Now()
	stopAt := startAt.Add(2 * time.Second)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stopAt) {
				p := start(t, env, "key", "rotate", "--dev", "--data-dir", dir, "--output", "json")
				mu.Lock()
				inflight[p] = true
				mu.Unlock()
				// Some run to completion, some die at a random moment.
				if rand.IntN(2) == 0 {
					time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
					mu.Lock()
					if !p.exited() {
						killed++
					}
					mu.Unlock()
					p.kill()
				}
				if !p.waitExit(commandTimeout) {
					t.Errorf("key rotate hung: %s", p.describe())
					p.kill()
					p.waitExit(exitTimeout)
				}
				mu.Lock()
				delete(inflight, p)
				if p.exitCode() == 0 {
					var out []rotated
					if err := json.Unmarshal([]byte(p.stdout.String()), &out); err != nil || len(out) != 2 {
						t.Errorf("key rotate succeeded but printed %q (%v)", p.stdout.String(), err)
					} else {
						succeeded = append(succeeded, out)
					}
				} else if !strings.Contains(p.state.String(), "killed") {
					// Failing on its own (not by our SIGKILL) is a bug: the
					// database is shared and busy_timeout should make it wait.
					t.Errorf("key rotate failed on its own: exit %d: %s", p.exitCode(), p.describe())
				}
				mu.Unlock()
			}
		}()
	}
	// Half way, SIGKILL the server and every CLI process in flight.
	time.Sleep(time.Second)
	s.kill()
	killInflight()
	if !s.waitExit(exitTimeout) {
		t.Fatal("server did not die of SIGKILL")
	}
	wg.Wait()
	killInflight()
	t.Logf("%d rotations completed, %d CLI processes killed in flight", len(succeeded), killed)

	// doctor finds nothing to fail.
	r := mustRun(t, env, "doctor", "--dev", "--data-dir", dir, "--output", "json")
	var checks []struct{ Check, Status, Message string }
	if err := json.Unmarshal([]byte(r.stdout), &checks); err != nil {
		t.Fatalf("doctor --output json: %v\n%s", err, r)
	}
	names := map[string]bool{}
	for _, c := range checks {
		names[c.Check] = true
		if c.Status != "OK" && c.Status != "WARN" {
			t.Errorf("doctor: %s %s: %s", c.Status, c.Check, c.Message)
		}
	}
	for _, want := range []string{"kek", "database", "migrations", "keys"} {
		if !names[want] {
			t.Errorf("doctor ran no %s check: %s", want, r.stdout)
		}
	}
	r = mustRun(t, env, "doctor", "--dev", "--data-dir", dir)
	for _, line := range strings.Split(strings.TrimRight(r.stdout, "\n"), "\n") {
		if !strings.HasPrefix(line, "OK ") && !strings.HasPrefix(line, "WARN ") && !strings.HasPrefix(line, " ") {
			t.Errorf("doctor line is neither OK nor WARN: %q", line)
		}
	}

	// Every rotation is one transaction: whole pairs or nothing.
	list := keyList(t, env, "--dev", "--data-dir", dir)
	byAlg := map[string]int{}
	kids := map[string]bool{}
	for _, k := range list {
		byAlg[k.Alg]++
		kids[k.KID] = true
		if !k.Usable {
			t.Errorf("key %s (%s) is not usable after the crash", k.KID, k.Alg)
		}
	}
	if byAlg["ES256"] != byAlg["RS256"] {
		t.Errorf("key list has %d ES256 and %d RS256 keys: a rotation was half applied: %+v", byAlg["ES256"], byAlg["RS256"], list)
	}
	if want := 2 + 2*len(succeeded); len(list) < want {
		t.Errorf("key list has %d keys, want at least %d (2 initial + 2 per completed rotation)", len(list), want)
	}
	for _, k := range first.kids() {
		if !kids[k] {
			t.Errorf("initial key %s is gone", k)
		}
	}
	for _, out := range succeeded {
		for _, k := range out {
			if !kids[k.KID] {
				t.Errorf("key %s reported as added by a completed rotation is not stored", k.KID)
			}
		}
	}

	// The same data dir serves again, with every stored key.
	s2 := serve(t, env, "--dev", "--listen", "127.0.0.1:0", "--data-dir", dir)
	set := mustJWKS(t, s2.URL)
	got, want := set.kids(), make([]string, 0, len(list))
	for _, k := range list {
		want = append(want, k.KID)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("JWKS after restart %v, want every stored key %v", got, want)
	}
	if code, status := readyz(t, s2.URL); code != http.StatusOK || status != "ready" {
		t.Errorf("/readyz after restart: %d %q", code, status)
	}
}

func TestRewrapPickedUpByRunningServer(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	env := baseEnv()
	kekFile := filepath.Join(dir, "kek")
	s := serve(t, env, "--dev", "--listen", "127.0.0.1:0", "--data-dir", dir)
	before := mustJWKS(t, s.URL)
	oldKEK, err := os.ReadFile(kekFile)
	if err != nil {
		t.Fatal(err)
	}
	oldList := keyList(t, env, "--dev", "--data-dir", dir)

	r := mustRun(t, env, "key", "rewrap", "--dev", "--data-dir", dir, "--output", "json")
	var rw struct {
		Rewrapped int    `json:"rewrapped"`
		KEKID     string `json:"kek_id"`
		KEKSource string `json:"kek_source"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rw); err != nil {
		t.Fatalf("key rewrap --output json: %v\n%s", err, r)
	}
	if rw.Rewrapped != 2 || rw.KEKID == "" || rw.KEKID == oldList[0].KEKID {
		t.Errorf("key rewrap: %+v; want 2 keys rewrapped under a new KEK (old %s)", rw, oldList[0].KEKID)
	}
	kekAfter, err := os.ReadFile(kekFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(kekAfter) == string(oldKEK) {
		t.Fatalf("key rewrap left the KEK file unchanged")
	}
	if st, _ := os.Stat(kekFile); st.Mode().Perm() != 0o600 {
		t.Errorf("KEK file mode %04o after rewrap, want 0600", st.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".kek*")); len(left) > 0 {
		t.Errorf("rewrap left temporary KEK files: %v", left)
	}
	// The rewrap is in the audit trail (the new KEK's id, never the KEK).
	rewraps := auditOf(t, dir, "key.rewrap")
	if len(rewraps) != 1 || rewraps[0].Actor != "cli" || !strings.Contains(rewraps[0].Detail, `"kek_id":"`+rw.KEKID+`"`) ||
		!strings.Contains(rewraps[0].Detail, `"rewrapped":2`) || strings.Contains(rewraps[0].Detail, strings.TrimSpace(string(kekAfter))) {
		t.Errorf("key.rewrap events %+v, want one by cli naming KEK %s and 2 keys, without the KEK", rewraps, rw.KEKID)
	}
	for _, k := range keyList(t, env, "--dev", "--data-dir", dir) {
		if k.KEKID != rw.KEKID || !k.Usable {
			t.Errorf("after rewrap key %s: kek_id %s usable %v; want %s, true", k.KID, k.KEKID, k.Usable, rw.KEKID)
		}
	}

	// The running server still serves the same keys, and is ready.
	time.Sleep(1500 * time.Millisecond) // let it reload the rewrapped rows
	if set := mustJWKS(t, s.URL); !slices.Equal(set.kids(), before.kids()) {
		t.Errorf("JWKS after rewrap %v, want %v", set.kids(), before.kids())
	}
	if code, status := readyz(t, s.URL); code != http.StatusOK {
		t.Errorf("/readyz after rewrap: %d %q", code, status)
	}

	// New keys sealed under the new KEK open on the running server, which
	// still holds the old KEK until it re-reads the file.
	added := rotate(t, env, "--dev", "--data-dir", dir)
	set := waitJWKSHas(t, s.URL, propagation, kidsOf(added)...)
	if len(set.Keys) != 4 {
		t.Errorf("JWKS after rotation: %v, want 4 keys", set.kids())
	}
	// The reload that published the new kids logged first if it could not
	// open them.
	if strings.Contains(s.stderr.String(), "signing keys not usable") {
		t.Errorf("the running server cannot open the keys sealed under the new KEK: %s", s.stderr.String())
	}
	if code, status := readyz(t, s.URL); code != http.StatusOK || status != "ready" {
		t.Errorf("/readyz after rewrap and rotation: %d %q", code, status)
	}

	// A restart opens every key under the new KEK.
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !s.waitExit(exitTimeout) || s.exitCode() != 0 {
		t.Fatalf("server did not stop cleanly: %s", s.describe())
	}
	s2 := serve(t, env, "--dev", "--listen", "127.0.0.1:0", "--data-dir", dir)
	if got := mustJWKS(t, s2.URL); len(got.Keys) != 4 {
		t.Errorf("JWKS after restart: %v, want 4 keys", got.kids())
	}
	if code, status := readyz(t, s2.URL); code != http.StatusOK || status != "ready" {
		t.Errorf("/readyz after restart: %d %q", code, status)
	}
	if strings.Contains(s2.stderr.String(), "signing keys not usable") {
		t.Errorf("restarted server cannot open its keys: %s", s2.stderr.String())
	}

	// Another KEK (SMARTGATE_KEK overrides the file) opens none of them.
	for _, k := range keyList(t, baseEnv("SMARTGATE_KEK="+newKEK(t)), "--dev", "--data-dir", dir) {
		if k.Usable {
			t.Errorf("key %s reported usable under an unrelated KEK", k.KID)
		}
	}
}
