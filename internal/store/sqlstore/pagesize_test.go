package sqlstore

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestPageSize: a new SQLite file, and its audit file, get pages of
// sqlitePageSize in WAL mode; a file made with SQLite's default 4 KiB
// pages keeps them, and opens, migrates and serves as before.
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
	for name, p := range map[string]*sql.DB{"main file (writer)": db.w, "main file (reader)": db.r, "audit file": db.a} {
		if got := pragma(p, "page_size"); got != "8192" {
			t.Errorf("%s: page_size = %s, want %d", name, got, sqlitePageSize)
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
}
