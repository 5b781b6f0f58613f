// Package bench holds smartgate's benchmarks: the store on SQLite and on
// PostgreSQL, JWT signing and verification with the keys the key manager
// holds, and the JWKS endpoint (in process, and over real HTTP against a
// server bench/run starts, side by side with a peer). They are testing.B
// benchmarks only: `go test ./bench` without -bench runs nothing and starts
// nothing. See docs/performance.md for the figures and how to reproduce them.
//
//	go test -run='^$' -bench=. -benchmem -count=5 ./bench
//	./bench/run
package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"smartgate/internal/config"
	"smartgate/internal/keys"
	"smartgate/internal/pgtest"
	"smartgate/internal/store"
	"smartgate/internal/store/sqlstore"
)

// TestMain stops the throwaway PostgreSQL cluster, if a benchmark started
// one, when the benchmarks end.
func TestMain(m *testing.M) { pgtest.Main(m) }

// backend opens a fresh, migrated store.
type backend struct {
	name string
	open func(b *testing.B) *sqlstore.DB
}

// backends are the two engines smartgate runs on, with the connection pool
// size a server uses by default (database_max_conns).
var backends = []backend{
	{"sqlite", func(b *testing.B) *sqlstore.DB {
		return openStore(b, filepath.Join(b.TempDir(), "smartgate.db"))
	}},
	{"postgres", func(b *testing.B) *sqlstore.DB {
		return openStore(b, pgtest.NewDatabase(b)) // skips when PostgreSQL is not installed
	}},
}

func openStore(b *testing.B, dsn string) *sqlstore.DB {
	b.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, dsn, sqlstore.Options{MaxConns: config.Default().DatabaseMaxConns})
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		b.Fatalf("Migrate: %v", err)
	}
	return db
}

// BenchmarkStore runs every store benchmark on each backend. The store is
// opened once per backend (per -count round); each sub-benchmark leaves the
// rows it wrote, as a running server would.
func BenchmarkStore(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b)
			benchStore(b, st)
		})
	}
}

func benchStore(b *testing.B, st *sqlstore.DB) {
	ctx := context.Background()

	// One change, one write transaction: what a key rotation, a client
	// update or a revocation costs on top of its own rows.
	b.Run("RecordChange", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if err := st.RecordChange(ctx, "clients", strconv.Itoa(i)); err != nil {
				b.Fatal(err)
			}
		}
	})

	// Many writers at once: 16 goroutines (SetParallelism × GOMAXPROCS).
	// SQLite has exactly one writer connection; PostgreSQL serialises on
	// the change counter's row lock. ns/op here is wall time per change
	// across all writers, so it is comparable with RecordChange.
	b.Run("RecordChangeParallel16", func(b *testing.B) {
		setClients(b, 16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := st.RecordChange(ctx, "revocations", "jti"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	// Audit: the writer in internal/audit flushes up to audit.batch_size
	// (256 by default) events in one transaction.
	for _, n := range []int{1, 256} {
		b.Run(fmt.Sprintf("AppendAudit/batch=%d", n), func(b *testing.B) {
			batch := auditBatch(n)
			for b.Loop() {
				if err := st.AppendAudit(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
		})
	}

	// The change-feed poll: every node runs this once per poll interval
	// (1 s) and, on PostgreSQL, on every NOTIFY. The tail is empty almost
	// always, so this is the steady-state cost of following the sequence.
	b.Run("ChangesSinceEmptyTail", func(b *testing.B) {
		latest, err := st.LatestChange(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if latest == 0 {
			b.Fatal("the change sequence is empty; RecordChange should have filled it")
		}
		for b.Loop() {
			cs, err := st.ChangesSince(ctx, latest, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if len(cs) != 0 {
				b.Fatalf("tail not empty: %d changes", len(cs))
			}
		}
	})

	// The signing keys of a fresh installation (one ES256, one RS256), read
	// on start and after every change on topic "keys".
	b.Run("ListSigningKeys", func(b *testing.B) {
		ensureKeys(b, st)
		for b.Loop() {
			ks, err := st.ListSigningKeys(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if len(ks) != len(keys.Algs) {
				b.Fatalf("%d keys, want %d", len(ks), len(keys.Algs))
			}
		}
	})
}

// auditBatch returns n events shaped like the token and FHIR events the
// server will record.
func auditBatch(n int) []store.AuditEvent {
	now := time.Now().UTC()
	out := make([]store.AuditEvent, n)
	for i := range out {
		out[i] = store.AuditEvent{
			Time:      now,
			RequestID: fmt.Sprintf("%032x", i),
			Actor:     "client:bench-backend-service",
			ClientID:  "bench-backend-service",
			Patient:   "Patient/example-" + strconv.Itoa(i%50),
			Action:    "token.issue",
			Outcome:   "success",
			Detail:    `{"grant_type":"client_credentials","scope":"system/Patient.rs system/Observation.rs"}`,
		}
	}
	return out
}

// ensureKeys creates the signing keys a server creates on first start.
func ensureKeys(b *testing.B, st *sqlstore.DB) *keys.Manager {
	b.Helper()
	kek, err := keys.ParseKEK(keys.GenerateKEK(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	m := keys.New(st, keys.Options{
		JWKSMaxAge:       config.Default().Keys.JWKSMaxAge.D(),
		MaxTokenLifetime: time.Hour,
		LoadKEK:          func() (*keys.KEK, error) { return kek, nil },
	})
	if err := m.Init(context.Background()); err != nil {
		b.Fatalf("keys Init: %v", err)
	}
	return m
}
