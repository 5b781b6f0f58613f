// Package pgtest gives tests a real PostgreSQL server: the one named by
// SMARTGATE_TEST_POSTGRES_URL, or else a throwaway cluster it starts in a
// temporary directory (initdb + pg_ctl, on 127.0.0.1 and a free port) and
// stops when the test binary ends. When PostgreSQL is not installed, tests
// skip with a loud reason, unless SMARTGATE_REQUIRE_POSTGRES=1 turns the
// skip into a failure (as CI does).
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// ErrNotInstalled means no PostgreSQL server binaries were found.
var ErrNotInstalled = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found; install them with: apt-get install -y postgresql")

// Cluster is a PostgreSQL server for tests.
type Cluster struct {
	URL     string // superuser URL of the "postgres" database
	Version string
	dir     string
	bindir  string
	cred    *syscall.Credential
}

var (
	shared    *Cluster
	sharedErr error
	once      sync.Once
)

// Main runs the tests of a package and stops the shared cluster afterwards.
// Use it from TestMain: func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	os.Exit(code)
}

// Required reports whether a missing PostgreSQL must fail the tests.
func Required() bool { return os.Getenv("SMARTGATE_REQUIRE_POSTGRES") == "1" }

// Shared returns the package's shared cluster, starting it on first use.
// It skips the test (or fails it when Required) if PostgreSQL is missing.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	once.Do(func() {
		if u := os.Getenv("SMARTGATE_TEST_POSTGRES_URL"); u != "" {
			shared = &Cluster{URL: u}
			return
		}
		shared, sharedErr = Start(context.Background())
	})
	if sharedErr != nil {
		if Required() || !errors.Is(sharedErr, ErrNotInstalled) {
			t.Fatalf("postgres: %v", sharedErr)
		}
		t.Skipf("SKIPPED: postgres: %v", sharedErr)
	}
	return shared
}

// NewDatabase creates a fresh, empty database on the shared cluster and
// returns its URL. The database is dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	c := Shared(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", c.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("postgres: create database: %v", err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", c.URL)
		if err != nil {
			return
		}
		defer a.Close()
		_, _ = a.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	u, _ := url.Parse(c.URL)
	u.Path = "/" + name
	return u.String()
}

// BinDir finds the directory holding initdb and pg_ctl. Debian keeps them
// off PATH, under /usr/lib/postgresql/<version>/bin.
func BinDir() (string, error) {
	var candidates []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(versions, func(i, j int) bool { return pgVersion(versions[i]) > pgVersion(versions[j]) })
	candidates = append(candidates, versions...)
	if p, err := exec.LookPath("initdb"); err == nil {
		candidates = append(candidates, filepath.Dir(p))
	}
	for _, d := range candidates {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

func pgVersion(bindir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(bindir)))
	return v
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Start creates and starts a throwaway cluster. initdb refuses to run as
// root, so as root the cluster belongs to the "postgres" user, in a
// directory that user owns (with the socket there too, -k).
func Start(ctx context.Context) (*Cluster, error) {
	bindir, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "smartgate-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, bindir: bindir}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root, and there is no postgres user to run the cluster as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.run(ctx, "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	opts := fmt.Sprintf("-h 127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", port, dir)
	if out, err := c.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", data, "-l", filepath.Join(dir, "server.log"), "-o", opts); err != nil {
		logText, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_ctl start: %v: %s %s", err, out, logText)
	}
	// A watchdog stops the cluster and removes its directory when this
	// process ends without Stop (a test binary killed by -timeout), so no
	// orphaned cluster keeps running on the machine.
	watch := exec.Command("/bin/sh", "-c",
		`while [ -d "/proc/$1" ]; do sleep 2; done; "$2/pg_ctl" stop -m immediate -w -D "$3/data" >/dev/null 2>&1; rm -rf "$3"`,
		"pgtest-watchdog", strconv.Itoa(os.Getpid()), bindir, dir)
	watch.Dir = dir
	watch.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	watch.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if c.cred != nil {
		watch.SysProcAttr.Credential = c.cred
	}
	if err := watch.Start(); err == nil {
		go func() { _ = watch.Wait() }()
	}
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if out, err := exec.CommandContext(ctx, filepath.Join(bindir, "postgres"), "--version").Output(); err == nil {
		c.Version = strings.TrimSpace(string(out))
	}
	return c, nil
}

// Stop stops the cluster and deletes its directory.
func (c *Cluster) Stop() {
	if c.dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = c.run(ctx, "pg_ctl", "stop", "-m", "immediate", "-w", "-D", filepath.Join(c.dir, "data"))
	os.RemoveAll(c.dir)
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bindir, name), args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd.CombinedOutput()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
