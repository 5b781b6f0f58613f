// Package storetest is the conformance suite every store backend passes.
// A backend's test calls Run with a function that opens a new, empty
// database and a function that opens another handle on the same database
// (another process, as far as the store can tell).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"smartgate/internal/store"
)

// Backend opens stores for the suite.
type Backend struct {
	// New opens a store on a fresh, empty database and returns its DSN.
	New func(t *testing.T) (store.Store, string)
	// Open opens another handle on the database named by dsn.
	Open func(t *testing.T, dsn string) store.Store
}

// Run runs every conformance test.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"Migrate", testMigrate},
		{"Clock", testClock},
		{"SigningKeysRoundTrip", testSigningKeysRoundTrip},
		{"SigningKeysRollback", testSigningKeysRollback},
		{"SigningKeysLockAcrossHandles", testSigningKeysLock},
		{"ChangesOrdered", testChangesOrdered},
		{"ChangesConcurrentNoGaps", testChangesConcurrent},
		{"ChangesSeenByOtherHandle", testChangesOtherHandle},
		{"ChangesPrune", testChangesPrune},
		{"Audit", testAudit},
	}
	tests = append(tests, oauthTests()...)
	tests = append(tests, fhirTests()...)
	tests = append(tests, authzTests()...)
	tests = append(tests, usersTests()...)
	tests = append(tests, exportTests()...)
	tests = append(tests, adminTests()...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, b) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func migrated(t *testing.T, b Backend) (store.Store, string) {
	s, dsn := b.New(t)
	if _, err := s.Migrate(ctx(t)); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s, dsn
}

func testMigrate(t *testing.T, b Backend) {
	s, dsn := b.New(t)
	c := ctx(t)
	cur, latest, err := s.SchemaVersion(c)
	if err != nil || cur != 0 || latest < 1 {
		t.Fatalf("fresh SchemaVersion = %d, %d, %v; want 0, >=1, nil", cur, latest, err)
	}
	// Two handles migrating at once apply each migration exactly once.
	other := b.Open(t, dsn)
	var wg sync.WaitGroup
	applied := make([][]int, 2)
	errs := make([]error, 2)
	for i, st := range []store.Store{s, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = st.Migrate(c)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Migrate %d: %v", i, err)
		}
	}
	if got := len(applied[0]) + len(applied[1]); got != latest {
		t.Errorf("concurrent migrations applied %d versions in all (%v, %v), want %d", got, applied[0], applied[1], latest)
	}
	again, err := s.Migrate(c)
	if err != nil || len(again) != 0 {
		t.Errorf("second Migrate applied %v, %v; want nothing", again, err)
	}
	cur, latest2, err := s.SchemaVersion(c)
	if err != nil || cur != latest || latest2 != latest {
		t.Errorf("SchemaVersion after Migrate = %d, %d, %v; want %d, %d", cur, latest2, err, latest, latest)
	}
	if err := s.Check(c); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func testClock(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	now, err := s.Now(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(now); d > time.Minute || d < -time.Minute {
		t.Errorf("database clock %v is %v away from ours", now, d)
	}
	if err := s.Ping(ctx(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func key(kid, alg string, created time.Time) store.SigningKey {
	return store.SigningKey{
		KID: kid, Alg: alg,
		PublicJWK:  []byte(`{"kty":"EC","kid":"` + kid + `"}`),
		PrivateEnc: []byte{0, 1, 2, 255, byte(len(kid))},
		KEKID:      "kek1",
		CreatedAt:  created.Truncate(time.Microsecond).UTC(),
		ActiveAt:   created.Add(time.Hour).Truncate(time.Microsecond).UTC(),
	}
}

func testSigningKeysRoundTrip(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	if ks, err := s.ListSigningKeys(c); err != nil || len(ks) != 0 {
		t.Fatalf("fresh ListSigningKeys = %v, %v; want none", ks, err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC)
	want := []store.SigningKey{key("a", "ES256", t0), key("b", "RS256", t0.Add(time.Second))}
	before, _ := s.LatestChange(c)
	err := s.UpdateSigningKeys(c, func(existing []store.SigningKey) ([]store.SigningKey, error) {
		return want, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.ListSigningKeys(c)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ListSigningKeys mismatch (-want +got):\n%s", d)
	}
	after, _ := s.LatestChange(c)
	if after <= before {
		t.Errorf("UpdateSigningKeys recorded no change (latest %d -> %d)", before, after)
	}
	// Replace by kid (what rewrap does).
	err = s.UpdateSigningKeys(c, func(existing []store.SigningKey) ([]store.SigningKey, error) {
		if len(existing) != 2 {
			return nil, fmt.Errorf("updater saw %d keys, want 2", len(existing))
		}
		k := existing[0]
		k.PrivateEnc, k.KEKID = []byte("rewrapped"), "kek2"
		return []store.SigningKey{k}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = s.ListSigningKeys(c)
	if len(got) != 2 || string(got[0].PrivateEnc) != "rewrapped" || got[0].KEKID != "kek2" || got[1].KEKID != "kek1" {
		t.Errorf("after replace got %+v", got)
	}
}

func testSigningKeysRollback(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	boom := errors.New("boom")
	before, _ := s.LatestChange(c)
	err := s.UpdateSigningKeys(c, func([]store.SigningKey) ([]store.SigningKey, error) {
		return []store.SigningKey{key("x", "ES256", time.Now())}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateSigningKeys error = %v, want the updater's", err)
	}
	if ks, _ := s.ListSigningKeys(c); len(ks) != 0 {
		t.Errorf("a failed update wrote %d keys", len(ks))
	}
	if after, _ := s.LatestChange(c); after != before {
		t.Errorf("a failed update recorded a change")
	}
	// A duplicate-kid insert inside one batch is not possible to half-apply:
	// the second key fails the transaction only if the engine rejects it, so
	// check the store stays usable after a failed update.
	if err := s.UpdateSigningKeys(c, func([]store.SigningKey) ([]store.SigningKey, error) {
		return []store.SigningKey{key("y", "ES256", time.Now())}, nil
	}); err != nil {
		t.Fatalf("store unusable after rollback: %v", err)
	}
}

// testSigningKeysLock: several handles (nodes) "ensure" an ES256 key at once;
// the lock lets exactly one create it.
func testSigningKeysLock(t *testing.T, b Backend) {
	s, dsn := migrated(t, b)
	c := ctx(t)
	handles := []store.Store{s, b.Open(t, dsn), b.Open(t, dsn), b.Open(t, dsn)}
	var wg sync.WaitGroup
	errs := make(chan error, len(handles)*2)
	for i, h := range handles {
		for j := 0; j < 2; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- h.UpdateSigningKeys(c, func(existing []store.SigningKey) ([]store.SigningKey, error) {
					for _, k := range existing {
						if k.Alg == "ES256" {
							return nil, nil
						}
					}
					time.Sleep(20 * time.Millisecond) // widen the race window
					return []store.SigningKey{key(fmt.Sprintf("k%d-%d", i, j), "ES256", time.Now())}, nil
				})
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent ensure: %v", err)
		}
	}
	ks, err := s.ListSigningKeys(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 1 {
		t.Errorf("concurrent ensure created %d keys, want exactly 1", len(ks))
	}
}

func testChangesOrdered(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	start, err := s.LatestChange(c)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := s.RecordChange(c, "clients", fmt.Sprint("c", i)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ChangesSince(c, start, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("ChangesSince returned %d changes, want 5", len(got))
	}
	for i, ch := range got {
		if ch.Seq != start+int64(i)+1 || ch.Topic != "clients" || ch.Key != fmt.Sprint("c", i) {
			t.Errorf("change %d = %+v", i, ch)
		}
		if time.Since(ch.At) > time.Minute {
			t.Errorf("change %d time %v is not recent", i, ch.At)
		}
	}
	limited, _ := s.ChangesSince(c, start, 2)
	if len(limited) != 2 {
		t.Errorf("limit 2 returned %d", len(limited))
	}
	latest, _ := s.LatestChange(c)
	if latest != start+5 {
		t.Errorf("LatestChange = %d, want %d", latest, start+5)
	}
}

// testChangesConcurrent: writers on several handles; a follower reading as
// they go must see every sequence number exactly once, in order.
func testChangesConcurrent(t *testing.T, b Backend) {
	s, dsn := migrated(t, b)
	c := ctx(t)
	start, _ := s.LatestChange(c)
	const writers, each = 4, 15
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		h := b.Open(t, dsn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := h.RecordChange(c, "revocations", fmt.Sprintf("w%d-%d", w, i)); err != nil {
					t.Errorf("RecordChange: %v", err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[int64]bool{}
	last := start
	follow := func() {
		cs, err := s.ChangesSince(c, last, 7)
		if err != nil {
			t.Errorf("ChangesSince: %v", err)
			return
		}
		for _, ch := range cs {
			if ch.Seq != last+1 {
				t.Errorf("follower saw seq %d after %d: a gap", ch.Seq, last)
			}
			seen[ch.Seq] = true
			last = ch.Seq
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			follow()
		}
	}
	for i := 0; i < 100 && last < start+writers*each; i++ {
		follow()
	}
	if len(seen) != writers*each {
		t.Errorf("follower saw %d changes, want %d", len(seen), writers*each)
	}
}

func testChangesOtherHandle(t *testing.T, b Backend) {
	s, dsn := migrated(t, b)
	c := ctx(t)
	other := b.Open(t, dsn)
	start, _ := other.LatestChange(c)
	notes := other.Notifications(c)
	if err := s.RecordChange(c, "settings", "registration_policy"); err != nil {
		t.Fatal(err)
	}
	if notes != nil {
		// The listener may also wake once on connect; any wake within the
		// deadline after our change must be followed by the change itself.
		select {
		case <-notes:
		case <-time.After(10 * time.Second):
			t.Errorf("no notification within 10s of a committed change")
		}
	}
	got, err := other.ChangesSince(c, start, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Topic != "settings" || got[0].Key != "registration_policy" {
		t.Errorf("other handle saw %+v, want the settings change", got)
	}
}

func testChangesPrune(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	for i := 0; i < 3; i++ {
		if err := s.RecordChange(c, "keys", ""); err != nil {
			t.Fatal(err)
		}
	}
	latest, _ := s.LatestChange(c)
	if err := s.PruneChanges(c, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, _ := s.ChangesSince(c, 0, 0)
	if len(got) != 1 || got[0].Seq != latest {
		t.Errorf("after pruning everything older than now: %+v, want only the latest (%d)", got, latest)
	}
	if l2, _ := s.LatestChange(c); l2 != latest {
		t.Errorf("LatestChange moved by pruning: %d -> %d", latest, l2)
	}
	if err := s.RecordChange(c, "keys", ""); err != nil {
		t.Fatal(err)
	}
	if l3, _ := s.LatestChange(c); l3 != latest+1 {
		t.Errorf("sequence after prune = %d, want %d", l3, latest+1)
	}
}

func testAudit(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	var batch []store.AuditEvent
	for i := 0; i < 10; i++ {
		batch = append(batch, store.AuditEvent{
			Time: t0.Add(time.Duration(i) * time.Minute), RequestID: fmt.Sprint("r", i),
			Actor: []string{"user:alice", "client:lab"}[i%2], ClientID: "app1",
			Patient: []string{"Patient/1", ""}[i%2], Action: "fhir.read",
			Outcome: []string{"success", "failure"}[i%3/2], Detail: `{"n":` + fmt.Sprint(i) + `}`,
		})
	}
	if err := s.AppendAudit(c, batch); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(c, nil); err != nil {
		t.Errorf("empty batch: %v", err)
	}
	all, err := s.ListAudit(c, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 10 || all[0].RequestID != "r9" || all[9].RequestID != "r0" {
		t.Fatalf("ListAudit returned %d events, first %+v; want 10 newest first", len(all), all[0])
	}
	if all[0].ID == 0 || !all[0].Time.Equal(t0.Add(9*time.Minute)) || all[0].Detail != `{"n":9}` {
		t.Errorf("event round trip: %+v", all[0])
	}
	alice, _ := s.ListAudit(c, store.AuditFilter{Actor: "user:alice"})
	if len(alice) != 5 {
		t.Errorf("filter by actor: %d events, want 5", len(alice))
	}
	window, _ := s.ListAudit(c, store.AuditFilter{Since: t0.Add(2 * time.Minute), Until: t0.Add(5 * time.Minute)})
	if len(window) != 3 {
		t.Errorf("filter by time [2m,5m): %d events, want 3", len(window))
	}
	pat, _ := s.ListAudit(c, store.AuditFilter{Patient: "Patient/1", Limit: 2})
	if len(pat) != 2 || pat[0].Patient != "Patient/1" {
		t.Errorf("filter by patient with limit 2: %+v", pat)
	}
}
