package sqlstore

import (
	"context"
	"path/filepath"
	"testing"

	"smartgate/internal/pgtest"
)

// migratedSQLite opens a fresh, migrated SQLite store in a temporary
// directory, closed when the test ends.
func migratedSQLite(t *testing.T) *DB {
	t.Helper()
	return migrated(t, filepath.Join(t.TempDir(), "test.db"))
}

// migratedPostgres opens a fresh, migrated store in a new database of the
// test PostgreSQL cluster (pgtest), closed when the test ends.
func migratedPostgres(t *testing.T) *DB {
	t.Helper()
	return migrated(t, pgtest.NewDatabase(t))
}

func migrated(t *testing.T, dsn string) *DB {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// queryPlan is SQLite's EXPLAIN QUERY PLAN of query on the readers: the
// detail of each step.
func queryPlan(t *testing.T, db *DB, query string, args ...any) []string {
	t.Helper()
	explain := "EXPLAIN QUERY PLAN "
	if db.postgres {
		explain = "EXPLAIN "
	}
	rows, err := db.r.QueryContext(context.Background(), explain+db.q(query), args...)
	if err != nil {
		t.Fatalf("%s%s: %v", explain, query, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var detail string
		dest := []any{&detail} // PostgreSQL: one line a row
		if !db.postgres {
			var id, parent, unused int
			dest = []any{&id, &parent, &unused, &detail}
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}
