package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"smartgate/internal/pgtest"
	"smartgate/internal/store"
)

// TestMigration6KeepsRows upgrades a database that holds a client and a
// grant written at schema 5: the client gets both flags off and the grant
// counts its creation as its last use.
func TestMigration6KeepsRows(t *testing.T) { forEngines(t, testMigration6) }

func testMigration6(t *testing.T, dsn string) {
	ctx := context.Background()
	created := time.Date(2026, 10, 1, 8, 0, 0, 123000, time.UTC)
	db := atSchema(t, dsn, 5, func(db *DB, tx *sql.Tx) error {
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

// TestMigration13KeysCompartments upgrades a database whose compartment
// memberships were written at schema 12, without row keys: a membership by
// a resource's own content gets its resource's row key, one given by
// another resource keeps 0, and a compartment finds both, driving a
// search or filtering it.
func TestMigration13KeysCompartments(t *testing.T) { forEngines(t, testMigration13) }

func testMigration13(t *testing.T, dsn string) {
	ctx := context.Background()
	now := micros(time.Now())
	db := atSchema(t, dsn, 12, func(db *DB, tx *sql.Tx) error {
		// As a schema-12 smartgate wrote them: an Observation in p1's
		// compartment, one in p2's, and a Binary placed in p1's by a
		// DocumentReference.
		for _, r := range []struct {
			rid      int64
			typ, id  string
			patients []string
			via      string
		}{
			{7, "Observation", "o1", []string{"p1"}, ""},
			{8, "Observation", "o2", []string{"p2"}, ""},
			{9, "Binary", "b1", []string{"p1"}, "DocumentReference/d1"},
			{10, "DocumentReference", "d1", []string{"p1"}, ""},
		} {
			if _, err := tx.ExecContext(ctx, db.q("INSERT INTO fhir_resources (rid, res_type, res_id, version, last_updated, deleted, body) VALUES (?, ?, ?, 1, ?, 0, ?)"),
				r.rid, r.typ, r.id, now, `{"resourceType":"`+r.typ+`","id":"`+r.id+`"}`); err != nil {
				return err
			}
			for _, p := range r.patients {
				if _, err := tx.ExecContext(ctx, db.q("INSERT INTO fhir_compartment (res_type, res_id, patient_id, via) VALUES (?, ?, ?, ?)"), r.typ, r.id, p, r.via); err != nil {
					return err
				}
			}
		}
		return nil
	})
	applied, err := db.Migrate(ctx)
	if err != nil || len(applied) == 0 || applied[0] != 13 {
		t.Fatalf("Migrate = %v, %v; want 13 applied first", applied, err)
	}
	var keyed, unkeyed int
	if err := db.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM fhir_compartment c JOIN fhir_resources r ON r.rid = c.rid AND r.res_type = c.res_type AND r.res_id = c.res_id").Scan(&keyed); err != nil {
		t.Fatal(err)
	}
	if err := db.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM fhir_compartment WHERE rid = 0 AND via <> ''").Scan(&unkeyed); err != nil {
		t.Fatal(err)
	}
	if keyed != 3 || unkeyed != 1 {
		t.Errorf("after migration: %d memberships keyed to their resource, %d given ones at 0; want 3 and 1", keyed, unkeyed)
	}
	p1 := store.InCompartment{Patients: []string{"p1"}}
	for _, q := range []store.Query{
		{Type: "Observation", Where: p1},
		{Type: "Observation", Where: store.And{store.IDIn{IDs: []string{"o1", "o2"}}, p1}},
		{Type: "Binary", Where: p1},
		{Type: "Binary", Where: store.And{store.IDIn{IDs: []string{"b1"}}, p1}},
	} {
		q.Page = store.Page{Count: 10}
		res, err := db.Search(ctx, q)
		if err != nil || len(res.Resources) != 1 {
			t.Errorf("%s where %#v after migration: %d found, %v; want 1", q.Type, q.Where, len(res.Resources), err)
		}
	}
}

// TestMigration15KeysTokens upgrades a database whose token rows were
// written at schema 14, without their patient's key: each gets the key
// that smartgate computes for the patient of its resource's own
// compartment (the same on both engines: PostgreSQL computes it in SQL),
// the key of many for a resource in several, none for one in none or
// placed by another resource, and a patient's code then finds them, and
// the rows an older smartgate writes after the migration.
func TestMigration15KeysTokens(t *testing.T) { forEngines(t, testMigration15) }

func testMigration15(t *testing.T, dsn string) {
	ctx := context.Background()
	now := micros(time.Now())
	db := atSchema(t, dsn, 14, func(db *DB, tx *sql.Tx) error {
		for _, r := range []struct {
			rid      int64
			typ, id  string
			patients []string
			via      string
		}{
			{7, "Observation", "o1", []string{"syn-1-1"}, ""},
			{8, "Observation", "o2", []string{"4f1c2a9e-0b7d-4e55-9a53-1d2e3f4a5b6c"}, ""},
			{9, "Observation", "o3", []string{"syn-1-1", "p-ü"}, ""},
			{10, "Observation", "o4", nil, ""},
			{11, "Binary", "b1", []string{"syn-1-1"}, "DocumentReference/d1"},
		} {
			if _, err := tx.ExecContext(ctx, db.q("INSERT INTO fhir_resources (rid, res_type, res_id, version, last_updated, deleted, body) VALUES (?, ?, ?, 1, ?, 0, ?)"),
				r.rid, r.typ, r.id, now, `{"resourceType":"`+r.typ+`","id":"`+r.id+`"}`); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, db.q("INSERT INTO fhir_token (rid, res_type, param, system, code, text) VALUES (?, ?, 'code', 'http://loinc.org', 'a', '')"), r.rid, r.typ); err != nil {
				return err
			}
			key := r.rid
			if r.via != "" {
				key = 0
			}
			for _, p := range r.patients {
				if _, err := tx.ExecContext(ctx, db.q("INSERT INTO fhir_compartment (res_type, res_id, patient_id, via, rid) VALUES (?, ?, ?, ?, ?)"), r.typ, r.id, p, r.via, key); err != nil {
					return err
				}
			}
		}
		return nil
	})
	applied, err := db.Migrate(ctx)
	if err != nil || len(applied) == 0 || applied[0] != 15 {
		t.Fatalf("Migrate = %v, %v; want 15 applied first", applied, err)
	}
	want := map[int64]int64{7: patientKey("syn-1-1"), 8: patientKey("4f1c2a9e-0b7d-4e55-9a53-1d2e3f4a5b6c"), 9: manyPatients, 10: noPatient, 11: noPatient}
	rows, err := db.r.QueryContext(ctx, "SELECT rid, patient_key FROM fhir_token ORDER BY rid")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[int64]int64{}
	for rows.Next() {
		var rid, k int64
		if err := rows.Scan(&rid, &k); err != nil {
			t.Fatal(err)
		}
		got[rid] = k
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("patient keys after migration = %v, want %v", got, want)
	}
	// A schema-14 smartgate still running on a migrated PostgreSQL
	// database writes its token rows without a key (the column's default):
	// the patient's searches still find the resource.
	if _, err := db.w.ExecContext(ctx, db.q("INSERT INTO fhir_resources (rid, res_type, res_id, version, last_updated, deleted, body) VALUES (12, 'Observation', 'o5', 1, ?, 0, '{}')"), now); err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.ExecContext(ctx, "INSERT INTO fhir_token (rid, res_type, param, system, code, text) VALUES (12, 'Observation', 'code', 'http://loinc.org', 'a', '')"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.ExecContext(ctx, "INSERT INTO fhir_compartment (res_type, res_id, patient_id, via, rid) VALUES ('Observation', 'o5', 'syn-1-1', '', 12)"); err != nil {
		t.Fatal(err)
	}
	code := store.TokenMatch{Param: "code", System: "http://loinc.org", Code: "a"}
	for _, c := range []struct {
		patient string
		want    []string
	}{{"syn-1-1", []string{"o1", "o3", "o5"}}, {"p-ü", []string{"o3"}}, {"4f1c2a9e-0b7d-4e55-9a53-1d2e3f4a5b6c", []string{"o2"}}} {
		res, err := db.Search(ctx, store.Query{Type: "Observation", Where: store.And{code, store.InCompartment{Patients: []string{c.patient}}}, Page: store.Page{Count: 10}})
		var ids []string
		for _, f := range res.Resources {
			ids = append(ids, f.ID)
		}
		if err != nil || !slices.Equal(ids, c.want) {
			t.Errorf("code a in %s's compartment after migration = %v, %v; want %v", c.patient, ids, err, c.want)
		}
	}
}

// forEngines runs test on a fresh SQLite file and a fresh PostgreSQL
// database.
func forEngines(t *testing.T, test func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { test(t, filepath.Join(t.TempDir(), "m.db")) })
	t.Run("postgres", func(t *testing.T) { test(t, pgtest.NewDatabase(t)) })
}

// atSchema opens dsn at schema version v, as a smartgate of that version
// left it, with the rows write puts there in the same transaction; the
// caller then runs Migrate.
func atSchema(t *testing.T, dsn string, v int, write func(db *DB, tx *sql.Tx) error) *DB {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ms, err := db.migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) <= v || ms[v].version != v+1 {
		t.Fatalf("migrations = %d files, want a %d after %d", len(ms), v+1, v)
	}
	err = db.tx(ctx, 0, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
			return err
		}
		for _, m := range ms[:v] {
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			if _, err := tx.ExecContext(ctx, db.q("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"), m.version, m.name, micros(time.Now())); err != nil {
				return err
			}
		}
		return write(db, tx)
	})
	if err != nil {
		t.Fatalf("schema %d: %v", v, err)
	}
	return db
}
