package sqlstore

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smartgate/internal/pgtest"
)

// TestMigration6KeepsRows upgrades a database that holds a client and a
// grant written at schema 5: the client gets both flags off and the grant
// counts its creation as its last use.
func TestMigration6KeepsRows(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		testMigration6(t, filepath.Join(t.TempDir(), "m6.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		testMigration6(t, pgtest.NewDatabase(t))
	})
}

func testMigration6(t *testing.T, dsn string) {
	ctx := context.Background()
	db, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ms, err := db.migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 6 || !strings.HasPrefix(ms[5].name, "0006_") {
		t.Fatalf("migrations = %d files, want 0006_* sixth", len(ms))
	}
	created := time.Date(2026, 10, 1, 8, 0, 0, 123000, time.UTC)
	err = db.tx(ctx, 0, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
			return err
		}
		for _, m := range ms[:5] {
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, db.q("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"), m.version, m.name, micros(created)); err != nil {
				return err
			}
		}
		// The rows as a schema-5 smartgate wrote them.
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO clients (id, type, status, verified, metadata, secret_hash, secret_expires_at,
			registration_token_hash, introspect_any, may_launch, admin, created_by, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			"old", "public", "enabled", true, `{"client_name":"Old app"}`, nil, 0, nil, false, true, false, "admin", micros(created), micros(created)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, db.q(`INSERT INTO grants (id, client_id, subject, scope, context, session_id, created_at, expires_at, revoked_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			"g-old", "old", "u1", "openid", "{}", "s1", micros(created), micros(created.Add(time.Hour)), 0)
		return err
	})
	if err != nil {
		t.Fatalf("schema 5: %v", err)
	}
	applied, err := db.Migrate(ctx)
	if err != nil || len(applied) == 0 || applied[0] != 6 {
		t.Fatalf("Migrate = %v, %v; want 6 applied first", applied, err)
	}
	c, err := db.GetClient(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if c.PKCEExempt || c.RequirePAR || !c.MayLaunch || c.Metadata.ClientName != "Old app" {
		t.Errorf("client after migration: %+v; want PKCEExempt and RequirePAR false, the rest as written", c)
	}
	g, err := db.GetGrant(ctx, "g-old")
	if err != nil {
		t.Fatal(err)
	}
	if !g.LastUsedAt.Equal(created) {
		t.Errorf("grant after migration: LastUsedAt %v, want its created_at %v", g.LastUsedAt, created)
	}
	n, err := db.RevokeSessionGrants(ctx, "s1", created.Add(time.Minute))
	if err != nil || n != 1 {
		t.Errorf("RevokeSessionGrants on a migrated grant = %d, %v; want 1", n, err)
	}
}

// TestSessionGrantsUseIndex checks with EXPLAIN QUERY PLAN that logout's
// lookup of a session's grants is answered from grants_session, not a scan
// of every grant.
func TestSessionGrantsUseIndex(t *testing.T) {
	db := migratedSQLite(t)
	plan := queryPlan(t, db, sessionGrantsQuery, "s", 0)
	if p := strings.Join(plan, "; "); !strings.Contains(p, "grants_session") {
		t.Errorf("session grant lookup plan = %q, want it to use index grants_session", p)
	}
}
