package sqlstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"smartgate/internal/pgtest"
	"smartgate/internal/store"
	"smartgate/internal/store/sqlstore"
	"smartgate/internal/store/storetest"
)

// TestMain reports one line per backend to the file named by
// SMARTGATE_TEST_REPORT (the README test command prints it), and stops the
// throwaway PostgreSQL cluster.
func TestMain(m *testing.M) {
	pgtest.Main(m)
}

func open(t *testing.T, dsn string) store.Store {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{MaxConns: 4})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformanceSQLite(t *testing.T) {
	defer report(t, "sqlite", "modernc.org/sqlite, WAL")
	storetest.Run(t, storetest.Backend{
		New: func(t *testing.T) (store.Store, string) {
			dsn := filepath.Join(t.TempDir(), "smartgate.db")
			return open(t, dsn), dsn
		},
		Open: open,
	})
}

func TestConformancePostgres(t *testing.T) {
	defer report(t, "postgres", "")
	c := pgtest.Shared(t)
	t.Logf("PostgreSQL: %s", c.Version)
	storetest.Run(t, storetest.Backend{
		New: func(t *testing.T) (store.Store, string) {
			dsn := pgtest.NewDatabase(t)
			return open(t, dsn), dsn
		},
		Open: open,
	})
}

func report(t *testing.T, backend, detail string) {
	path := os.Getenv("SMARTGATE_TEST_REPORT")
	if path == "" {
		return
	}
	status := "PASS"
	switch {
	case t.Skipped():
		status = "SKIPPED"
	case t.Failed():
		status = "FAIL"
	}
	if backend == "postgres" && !t.Skipped() {
		if c := pgtest.Shared(t); c.Version != "" {
			detail = c.Version
		}
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	line := fmt.Sprintf("storage suite on %-8s %s", backend+":", status)
	if status == "SKIPPED" {
		line = "SKIPPED: postgres: PostgreSQL is not installed (apt-get install -y postgresql); the storage suite did not run on it"
	} else if detail != "" {
		line += " (" + detail + ")"
	}
	fmt.Fprintln(f, line)
}
