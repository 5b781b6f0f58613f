package changes

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"smartgate/internal/store/sqlstore"
)

func open(t *testing.T, path string) *sqlstore.DB {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

// A change recorded through one handle (another process) reaches the
// handlers of a feed on another handle, once per topic per round.
func TestFeedDeliversOtherProcessChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	node, other := open(t, path), open(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := New(node, 20*time.Millisecond, nil)
	var keys, clients atomic.Int32
	f.Subscribe("keys", func(context.Context, []string) error { keys.Add(1); return nil })
	f.Subscribe("clients", func(context.Context, []string) error { clients.Add(1); return nil })
	if err := other.RecordChange(ctx, "keys", "before-start"); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := other.RecordChange(ctx, "keys", ""); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for keys.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if keys.Load() == 0 {
		t.Fatal("the keys handler never ran after another handle recorded a change")
	}
	if clients.Load() != 0 {
		t.Errorf("the clients handler ran %d times without a clients change", clients.Load())
	}
	latest, _ := other.LatestChange(ctx)
	for f.Position() != latest && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if f.Position() != latest {
		t.Errorf("feed position %d, want %d", f.Position(), latest)
	}
}

// A failing handler keeps the position, so the round is retried, and the
// node's view goes stale (which /readyz reports).
func TestFeedRetriesAndGoesStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st := open(t, path)
	ctx := context.Background()
	f := New(st, time.Hour, nil) // no background rounds: the test drives Sync
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.clock = func() time.Time { return now }
	fail := true
	calls := 0
	f.Subscribe("revocations", func(_ context.Context, keys []string) error {
		if len(keys) != 1 || keys[0] != "jti-1" {
			t.Errorf("handler got keys %v, want [jti-1]", keys)
		}
		calls++
		if fail {
			return errors.New("database went away")
		}
		return nil
	})
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if f.Staleness() != 0 {
		t.Fatalf("staleness right after start = %v", f.Staleness())
	}
	start := f.Position()
	if err := st.RecordChange(ctx, "revocations", "jti-1"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(3 * time.Second)
	if err := f.Sync(ctx); err == nil {
		t.Fatal("Sync succeeded although the handler failed")
	}
	if f.Position() != start {
		t.Errorf("position moved past a change whose handler failed")
	}
	if got := f.Staleness(); got != 3*time.Second {
		t.Errorf("staleness = %v, want 3s", got)
	}
	fail = false
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || f.Position() != start+1 || f.Staleness() != 0 {
		t.Errorf("after recovery: calls %d, position %d (want %d), staleness %v", calls, f.Position(), start+1, f.Staleness())
	}
}
