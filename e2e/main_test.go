package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"smartgate/internal/pgtest"
)

// bin is the smartgate binary built once for the whole package.
var bin string

// TestMain builds the binary, runs the tests and stops the shared
// PostgreSQL cluster (as pgtest.Main does) if a test started it.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "smartgate-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "smartgate")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/smartgate")
	build.Dir = ".." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building smartgate: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	// pgtest.Main(m) in pieces: it also calls os.Exit, so it cannot run after
	// our build; stop the shared cluster the same way it does.
	stopSharedPostgres()
	return code
}

var (
	pgMu      sync.Mutex
	pgCluster *pgtest.Cluster
)

// newPostgresDatabase returns a fresh database on the shared cluster (see
// pgtest.NewDatabase: it skips without PostgreSQL unless
// SMARTGATE_REQUIRE_POSTGRES=1) and remembers the cluster so that TestMain
// can stop it.
func newPostgresDatabase(t *testing.T) string {
	t.Helper()
	c := pgtest.Shared(t)
	pgMu.Lock()
	pgCluster = c
	pgMu.Unlock()
	return pgtest.NewDatabase(t)
}

func stopSharedPostgres() {
	pgMu.Lock()
	defer pgMu.Unlock()
	if pgCluster != nil {
		pgCluster.Stop()
	}
}
