package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"smartgate/internal/problem"
)

//go:embed migrations
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations of the dialect, in order.
// Files are named NNNN_description.sql.
func (db *DB) migrations() ([]migration, error) {
	dir := path.Join("migrations", db.Dialect())
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration file %s is not named NNNN_description.sql", e.Name())
		}
		b, err := fs.ReadFile(migrationFS, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration versions must run 1, 2, 3...; %s breaks the run", m.name)
		}
	}
	return out, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`

// Migrate implements store.Admin. Each migration runs in its own
// transaction together with its schema_migrations row, so a crash leaves the
// schema at a whole version.
func (db *DB) Migrate(ctx context.Context) ([]int, error) {
	ms, err := db.migrations()
	if err != nil {
		return nil, err
	}
	// Under the lock: two nodes creating the table at once race in PostgreSQL's catalog.
	err = db.tx(ctx, lockMigrate, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, createMigrationsTable)
		return err
	})
	if err != nil {
		return nil, err
	}
	var applied []int
	for _, m := range ms {
		if !db.postgres && m.version == auditMovedVersion {
			if err := db.moveAudit(ctx); err != nil {
				return applied, err
			}
		}
		err := db.tx(ctx, lockMigrate, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, db.q("SELECT COUNT(*) FROM schema_migrations WHERE version = ?"), m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil // applied before, or by another node while we waited for the lock
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.ExecContext(ctx, db.q("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"), m.version, m.name, micros(time.Now())); err != nil {
				return err
			}
			applied = append(applied, m.version)
			return nil
		})
		if err != nil {
			return applied, err
		}
	}
	cur, latest, err := db.SchemaVersion(ctx)
	if err != nil {
		return applied, err
	}
	if cur > latest {
		return applied, problem.New(problem.SchemaTooNew, "the database is at schema version %d but this smartgate knows only up to %d; run the newer smartgate that migrated it", cur, latest)
	}
	return applied, nil
}

// SchemaVersion implements store.Admin.
func (db *DB) SchemaVersion(ctx context.Context) (current, latest int, err error) {
	ms, err := db.migrations()
	if err != nil {
		return 0, 0, err
	}
	latest = len(ms)
	var exists bool
	probe := "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
	if db.postgres {
		probe = "SELECT to_regclass('schema_migrations') IS NOT NULL"
	}
	if err := db.r.QueryRowContext(ctx, probe).Scan(&exists); err != nil {
		return 0, latest, err
	}
	if !exists {
		return 0, latest, nil
	}
	var v sql.NullInt64
	if err := db.r.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_migrations").Scan(&v); err != nil {
		return 0, latest, err
	}
	return int(v.Int64), latest, nil
}
