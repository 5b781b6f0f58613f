package sqlstore

import (
	"context"
	"testing"
	"time"

	"smartgate/internal/store"
)

// TestBackgroundCheckpoint: the SQLite writer checkpoints the WAL only as
// a backstop, and the background checkpointer copies what is written back
// into the database file.
func TestBackgroundCheckpoint(t *testing.T) {
	ctx := context.Background()
	db := migratedSQLite(t)
	var pages int
	if err := db.w.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&pages); err != nil || pages != walBackstopPages {
		t.Fatalf("writer wal_autocheckpoint = %d, %v; want %d (the backstop)", pages, err, walBackstopPages)
	}
	before := db.ckpt.runs.Load()
	events := make([]store.AuditEvent, 200)
	for i := range events {
		events[i] = store.AuditEvent{Time: time.Now(), Action: "test.event", Outcome: "success", Actor: "t"}
	}
	if err := db.AppendAudit(ctx, events); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for db.ckpt.runs.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("no background checkpoint copied the written pages within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var busy, log, copied int
	if err := db.w.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &copied); err != nil || copied != log {
		t.Errorf("after the background checkpoint: %d of %d WAL pages in the database file (%v)", copied, log, err)
	}
}
