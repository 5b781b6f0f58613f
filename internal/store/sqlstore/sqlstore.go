// Package sqlstore implements the store contract on SQL, in two dialects:
// SQLite through modernc.org/sqlite (pure Go, WAL, one writer connection and
// a reader pool) and PostgreSQL through github.com/jackc/pgx/v5. One set of
// queries serves both; the dialect only rebinds placeholders, picks the lock
// and the migration files.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	"smartgate/internal/config"
	"smartgate/internal/store"
)

// Options tune the connection pools.
type Options struct {
	MaxConns int // readers for SQLite, the whole pool for PostgreSQL
}

// DB is the SQL store. It implements store.Store.
type DB struct {
	postgres bool
	w        *sql.DB // the writer (SQLite: exactly one connection)
	r        *sql.DB // readers (PostgreSQL: the same pool as w)
	// a is the audit trail's pool. On SQLite the audit events live in a
	// file of their own (AuditFile), so that the write every request
	// makes to the trail leaves the main file's WAL alone: a commit there
	// makes every reader drop its whole page cache at its next read
	// (SQLite's pager resets it when the WAL has changed), and the
	// searches and reads then fetched each page again from the OS
	// (docs/performance.md: patient searches at 1M, 12-20% more a
	// second). PostgreSQL: the same pool as w.
	a   *sql.DB
	dsn string
	now func() time.Time

	// exportDir (SQLite): where Bulk Data export files are written,
	// beside the database (ExportDir). Empty on PostgreSQL: there they
	// are rows, which every node serves. exportfiles.go.
	exportDir string

	assertOnce sync.Once // UseAssertion's statement, prepared on first use
	assertStmt *sql.Stmt
	assertErr  error

	readStmts *stmtCache // SQLite: the statements of reads, kept prepared on the readers

	// bulkStmts (SQLite): the bulk INSERTs' statements, prepared on the
	// writer by the first bulk load (prepareBulk) and kept for the next
	// transactions; nil before.
	bulkStmts atomic.Pointer[bulkStmts]

	// unhintedUntil (unix ns): searches name no index until then (a bulk
	// load deferred one; bulkload.go).
	unhintedUntil atomic.Int64

	ckpt *checkpointer // SQLite: the WAL's background checkpoints

	// auditIndexed (unix ns): when AppendAudit last brought the audit
	// file's bulk indexes up to date (SQLite; auditfile.go).
	auditIndexed atomic.Int64
}

var _ store.Store = (*DB)(nil)

// customPlans adds plan_cache_mode=force_custom_plan to a PostgreSQL URL
// that does not set it (pgx sends unknown URL parameters as run-time
// parameters). pgx prepares and caches every statement, and after five
// executions PostgreSQL may switch to a generic plan, made without the
// values: for a FHIR search the generic plan drove a patient's
// Observation?code=..&date=.. from the code's index over every patient
// (4,773 rows and 1.3 s at 100k resources, where the patient's 136
// references take milliseconds). Planning each execution costs a few
// milliseconds at most for the largest searches.
func customPlans(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	if q.Has("plan_cache_mode") {
		return dsn
	}
	q.Set("plan_cache_mode", "force_custom_plan")
	u.RawQuery = q.Encode()
	return u.String()
}

// Open connects to dsn: a postgres:// or postgresql:// URL, or else the path
// of a SQLite file (created if missing; its directory must exist).
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	if opts.MaxConns < 1 {
		opts.MaxConns = 8
	}
	db := &DB{dsn: dsn, now: time.Now}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		db.postgres = true
		p, err := sql.Open("pgx", customPlans(dsn))
		if err != nil {
			return nil, err
		}
		p.SetMaxOpenConns(opts.MaxConns)
		p.SetMaxIdleConns(opts.MaxConns)
		p.SetConnMaxIdleTime(5 * time.Minute)
		db.w, db.r, db.a = p, p, p
	} else {
		path := config.SQLitePath(dsn)
		if dir := filepath.Dir(path); dir != "" {
			if _, err := os.Stat(dir); err != nil {
				return nil, fmt.Errorf("SQLite directory %s: %w", dir, err)
			}
		}
		createOwnerOnly(path)
		// WAL lets readers run beside the one writer (sqlitePragmas).
		// (Bulk loads give the writer a larger page cache: BeginBulkLoad.)
		// A new file gets pages of sqlitePageSize, a new audit file pages
		// of auditPageSize.
		file := "file:" + escapePath(path)
		pragmas := sqlitePragmas(sqlitePageSize)
		// The writer checkpoints the WAL only as a backstop: checkpoint.go.
		w, err := sql.Open("sqlite", file+"?"+pragmas+fmt.Sprintf("&_pragma=wal_autocheckpoint(%d)", walBackstopPages)+"&_txlock=immediate")
		if err != nil {
			return nil, err
		}
		w.SetMaxOpenConns(1)
		w.SetMaxIdleConns(1)
		w.SetConnMaxLifetime(0)
		r, err := sql.Open("sqlite", file+"?"+pragmas+"&_pragma=query_only(1)")
		if err != nil {
			w.Close()
			return nil, err
		}
		r.SetMaxOpenConns(opts.MaxConns)
		r.SetMaxIdleConns(opts.MaxConns)
		db.w, db.r = w, r
		db.exportDir = ExportDir(path)
		db.readStmts = newStmtCache(r, 256)
		if db.a, err = openAudit(ctx, AuditFile(path), sqlitePragmas(auditPageSize)); err != nil {
			db.Close()
			return nil, err
		}
		if err := db.moveAudit(ctx); err != nil {
			db.Close()
			return nil, err
		}
		if db.ckpt, err = startCheckpointer(file + "?_pragma=busy_timeout(10000)"); err != nil {
			db.Close()
			return nil, err
		}
	}
	if err := db.Ping(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// sqlitePageSize is the page size of a new SQLite file; a file that
// exists keeps its own (changing it takes a VACUUM out of WAL mode). With
// 8 KiB pages instead of SQLite's 4 KiB default, a bulk load writes and
// splits half as many B-tree pages: seeds of 100k resources ran 10-19%
// faster, paired, and reads, searches and transactions of 100 entries
// were unchanged. 16 KiB pages made those transactions 10-20% slower
// (each changed page goes to the WAL whole). docs/performance.md, "Page
// size".
const sqlitePageSize = 8192

// auditPageSize is the page size of a new audit file (AuditFile). Its
// writes are appends, plus one entry an event in the index by patient
// (and by actor) on a random page: each such page goes whole into the WAL
// at every commit. With 4 KiB pages an audit batch cost 8-25% less CPU
// than with 8 KiB for events naming a random one of 6,160 patients, on a
// trail of a million events (bench: BenchmarkAuditTrail, 54-55 against
// 60-67 µs an event; by hand, 44-48 against 59-65), and about the same
// for events naming none (11-14 µs). docs/performance.md, "The audit
// file's page size".
const auditPageSize = 4096

// sqlitePragmas is the DSN query of a SQLite file that a new file gets
// pages of pageSize in. WAL fixes a file's page size, so WAL comes as
// _journal_mode, which modernc.org/sqlite applies after the _pragma list,
// not as a _pragma (the list runs in lexicographic order: journal_mode
// before page_size). busy_timeout makes a second process (the CLI beside
// a server) wait instead of failing; synchronous=NORMAL is durable across
// process crashes in WAL mode.
func sqlitePragmas(pageSize int) string {
	return fmt.Sprintf("_pragma=page_size(%d)&_journal_mode=WAL&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)", pageSize)
}

// createOwnerOnly creates the SQLite file at path, if missing, readable
// by its owner only: the database holds encrypted keys and health data,
// the audit file names patients, and SQLite gives the -wal and -shm files
// it creates beside a file that file's mode.
func createOwnerOnly(path string) {
	if f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
}

func escapePath(p string) string {
	return (&url.URL{Path: p}).EscapedPath()
}

// Dialect implements store.Admin.
func (db *DB) Dialect() string {
	if db.postgres {
		return "postgres"
	}
	return "sqlite"
}

// Pools exposes the connection pools for metrics (name -> pool).
func (db *DB) Pools() map[string]*sql.DB {
	if db.postgres {
		return map[string]*sql.DB{"postgres": db.w}
	}
	return map[string]*sql.DB{"sqlite_writer": db.w, "sqlite_readers": db.r, "sqlite_audit": db.a}
}

// Ping implements store.Admin.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.w.PingContext(ctx); err != nil {
		return err
	}
	if db.r != db.w {
		if err := db.r.PingContext(ctx); err != nil {
			return err
		}
	}
	if db.a != db.w {
		return db.a.PingContext(ctx)
	}
	return nil
}

// Now implements store.Admin.
func (db *DB) Now(ctx context.Context) (time.Time, error) {
	if !db.postgres {
		return db.now(), nil
	}
	var t time.Time
	err := db.r.QueryRowContext(ctx, "SELECT now()").Scan(&t)
	return t, err
}

// Check implements store.Admin.
func (db *DB) Check(ctx context.Context) error {
	if db.postgres {
		return db.Ping(ctx)
	}
	if err := quickCheck(ctx, db.r); err != nil {
		return err
	}
	if err := quickCheck(ctx, db.a); err != nil {
		return fmt.Errorf("the audit file %s: %w", db.auditFile(), err)
	}
	return nil
}

// quickCheck runs SQLite's PRAGMA quick_check on the file of pool p.
func quickCheck(ctx context.Context, p *sql.DB) error {
	rows, err := p.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return err
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		if s != "ok" {
			msgs = append(msgs, s)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(msgs) > 0 {
		return fmt.Errorf("SQLite quick_check: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// Close implements store.Admin.
func (db *DB) Close() error {
	var errs []error
	errs = append(errs, db.ckpt.close())
	if db.assertStmt != nil {
		errs = append(errs, db.assertStmt.Close())
	}
	if db.readStmts != nil {
		errs = append(errs, db.readStmts.close())
	}
	if bs := db.bulkStmts.Load(); bs != nil {
		errs = append(errs, bs.close())
	}
	if db.r != nil && db.r != db.w {
		errs = append(errs, db.r.Close())
	}
	if db.a != nil && db.a != db.w {
		errs = append(errs, db.a.Close())
	}
	if db.w != nil {
		errs = append(errs, db.w.Close())
	}
	return errors.Join(errs...)
}

// q rewrites ? placeholders to $n for PostgreSQL. Queries in this package
// never contain a literal question mark.
func (db *DB) q(query string) string {
	if !db.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// Lock ids for PostgreSQL advisory transaction locks.
const (
	lockMigrate int64 = 0x736d6172_7401 // "smart" + 1
	lockKeys    int64 = 0x736d6172_7402
)

// tx runs fn in a write transaction. On SQLite the transaction begins
// IMMEDIATE (it holds the database's write lock from the start); on
// PostgreSQL, lock (when non-zero) is taken as an advisory transaction lock.
func (db *DB) tx(ctx context.Context, lock int64, fn func(*sql.Tx) error) (err error) {
	return db.txOn(ctx, db.w, lock, fn)
}

// txOn is tx on the pool p (db.w, or the audit trail's db.a).
func (db *DB) txOn(ctx context.Context, p *sql.DB, lock int64, fn func(*sql.Tx) error) (err error) {
	t, err := p.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			_ = t.Rollback()
			panic(p)
		}
		if err != nil {
			_ = t.Rollback()
			return
		}
		err = t.Commit()
	}()
	if db.postgres && lock != 0 {
		if _, err := t.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", lock); err != nil {
			return err
		}
	}
	return fn(t)
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }
