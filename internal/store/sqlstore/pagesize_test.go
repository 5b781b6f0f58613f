package sqlstore

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"smartgate/internal/store"
)

// TestPageSize: a new SQLite file gets pages of sqlitePageSize and its
// audit file pages of auditPageSize, in WAL mode; a file made with SQLite's
// default 4 KiB pages keeps them, and opens, migrates and serves as
// before, and so does an audit file made with 8 KiB pages.
func TestPageSize(t *testing.T) {
	ctx := context.Background()
	pragma := func(db *sql.DB, name string) string {
		t.Helper()
		var v string
		if err := db.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v); err != nil {
			t.Fatalf("PRAGMA %s: %v", name, err)
		}
		return v
	}

	db := migratedSQLite(t)
	for name, c := range map[string]struct {
		db   *sql.DB
		want string
	}{"main file (writer)": {db.w, "8192"}, "main file (reader)": {db.r, "8192"}, "audit file": {db.a, "4096"}} {
		p := c.db
		if got := pragma(p, "page_size"); got != c.want {
			t.Errorf("%s: page_size = %s, want %s", name, got, c.want)
		}
		if got := pragma(p, "journal_mode"); got != "wal" {
			t.Errorf("%s: journal_mode = %s, want wal", name, got)
		}
	}

	// A file from before: 4 KiB pages, in WAL mode, with a table in it.
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", "file:"+path+"?_pragma=page_size(4096)&_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.ExecContext(ctx, "CREATE TABLE before_8k (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if got := pragma(old, "page_size"); got != "4096" {
		t.Fatalf("the old file's page_size = %s, want 4096", got)
	}
	old.Close()
	db2 := migrated(t, path)
	for name, p := range map[string]*sql.DB{"writer": db2.w, "reader": db2.r} {
		if got := pragma(p, "page_size"); got != "4096" {
			t.Errorf("an existing 4 KiB file through the %s: page_size = %s, want it kept (4096)", name, got)
		}
		if got := pragma(p, "journal_mode"); got != "wal" {
			t.Errorf("an existing file through the %s: journal_mode = %s, want wal", name, got)
		}
	}
	if got := pragma(db2.r, "quick_check"); got != "ok" {
		t.Errorf("quick_check of the migrated 4 KiB file: %s", got)
	}

	// An audit file made with 8 KiB pages (by 359e141 to b92f497) keeps
	// them and takes events.
	path = filepath.Join(t.TempDir(), "eight.db")
	a8, err := sql.Open("sqlite", "file:"+AuditFile(path)+"?_pragma=page_size(8192)&_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a8.ExecContext(ctx, auditFileSchema); err != nil {
		t.Fatal(err)
	}
	a8.Close()
	db3 := migrated(t, path)
	if got := pragma(db3.a, "page_size"); got != "8192" {
		t.Errorf("an existing 8 KiB audit file: page_size = %s, want it kept (8192)", got)
	}
	if err := db3.AppendAudit(ctx, []store.AuditEvent{{Time: time.Now(), Actor: "cli", Action: "key.rotate", Outcome: "success", Detail: "{}"}}); err != nil {
		t.Fatal(err)
	}
	if evs, err := db3.ListAudit(ctx, store.AuditFilter{}); err != nil || len(evs) != 1 || evs[0].Action != "key.rotate" {
		t.Errorf("the 8 KiB audit file's events: %v %+v", err, evs)
	}
}
