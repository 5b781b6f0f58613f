package identity

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"smartgate/internal/audit"
	"smartgate/internal/config"
	"smartgate/internal/keys"
	"smartgate/internal/store"
	"smartgate/internal/store/sqlstore"
)

// testHasher is shared: each argon2id hash holds 19 MiB.
var testHasher = NewHasher(2)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// recorder keeps audit events in memory.
type recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *recorder) Record(_ context.Context, e audit.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) last() audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 {
		return audit.Event{}
	}
	return r.events[len(r.events)-1]
}

func (r *recorder) actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Action)
	}
	return out
}

type fixture struct {
	svc *Service
	st  *sqlstore.DB
	clk *clock
	rec *recorder
	kek *keys.KEK
	dsn string
}

func testLoginConfig() config.Login {
	return config.Login{SessionTTL: config.Duration(time.Hour), AccountFreeFailures: 3, AddressFreeFailures: 5,
		BackoffBase: config.Duration(time.Second), BackoffMax: config.Duration(8 * time.Second), FailureWindow: config.Duration(time.Hour)}
}

func openStore(t *testing.T, dsn string) *sqlstore.DB {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

// newFixture opens a real SQLite store in a temp dir and a Service on it
// with a fixed clock.
func newFixture(t *testing.T, mod func(*Options)) *fixture {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "smartgate.db")
	f := &fixture{st: openStore(t, dsn), clk: &clock{t: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)}, rec: &recorder{}, dsn: dsn}
	k, err := keys.ParseKEK(keys.GenerateKEK(), "test")
	if err != nil {
		t.Fatal(err)
	}
	f.kek = k
	opts := Options{Login: testLoginConfig(), TokenLifetime: time.Hour, KEK: func() (*keys.KEK, error) { return f.kek, nil },
		Audit: f.rec, Hasher: testHasher, Clock: f.clk.now}
	if mod != nil {
		mod(&opts)
	}
	f.svc = New(f.st, opts)
	return f
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

const goodPassword = "correct horse battery staple"

func (f *fixture) user(t *testing.T, username, role, fhirUser string) store.User {
	t.Helper()
	u, err := f.svc.CreateUser(ctx(t), NewUser{Username: username, Role: role, FHIRUser: fhirUser, Password: goodPassword}, "cli")
	if err != nil {
		t.Fatalf("CreateUser(%s): %v", username, err)
	}
	return u
}
