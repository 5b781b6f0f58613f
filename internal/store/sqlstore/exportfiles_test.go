package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"smartgate/internal/store"
)

// TestExportFilesBesideSQLite: on SQLite an export's files are plain files
// beside the database (owner-only), not rows; deleting, pruning and
// restarting a job remove them; a file written into the database by an
// older smartgate is still served.
func TestExportFilesBesideSQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sg.db")
	db := migrated(t, path)
	dir := ExportDir(path)
	if dir != filepath.Join(filepath.Dir(path), "sg-exports") || db.exportDir != dir {
		t.Fatalf("ExportDir = %s (db: %s)", dir, db.exportDir)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	start := func(id string, expires time.Time) {
		t.Helper()
		j := store.ExportJob{ID: id, ClientID: "lab", Status: store.ExportAccepted, Request: "r", Params: []byte(`{}`),
			TransactionTime: now, CreatedAt: now, UpdatedAt: now, ExpiresAt: expires}
		if err := db.CreateExportJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		if got, err := db.ClaimExportJob(ctx, "node", now, now.Add(time.Minute)); err != nil || got.ID != id {
			t.Fatalf("ClaimExportJob = %s, %v; want %s", got.ID, err, id)
		}
	}
	read := func(id string, seq int) []byte {
		t.Helper()
		var out []byte
		if err := db.ReadExportFile(ctx, id, seq, func(p []byte) error { out = append(out, p...); return nil }); err != nil {
			t.Fatalf("ReadExportFile(%s, %d): %v", id, seq, err)
		}
		return out
	}

	start("job-a", now.Add(time.Hour))
	big := bytes.Repeat([]byte("{\"resourceType\":\"Patient\"}\n"), 50_000) // 1.35 MB: two pieces when read
	for n, chunk := range [][]byte{big[:700_000], big[700_000:]} {
		if err := db.PutExportChunk(ctx, "job-a", "node", 1, n, chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.AddExportFile(ctx, "node", store.ExportFile{JobID: "job-a", Seq: 1, Type: "Patient", Count: 50_000, Bytes: int64(len(big))}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "job-a", "1.ndjson")
	fi, err := os.Stat(file)
	if err != nil || fi.Size() != int64(len(big)) || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the export file: %v, %v; want %d bytes, mode 0600", fi, err, len(big))
	}
	if di, err := os.Stat(filepath.Dir(file)); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("the job's directory: %v, %v; want mode 0700", di, err)
	}
	var rows int
	if err := db.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM export_chunks").Scan(&rows); err != nil || rows != 0 {
		t.Errorf("export_chunks holds %d rows (%v); the file's bytes belong in the file", rows, err)
	}
	var pieces int
	if err := db.ReadExportFile(ctx, "job-a", 1, func(p []byte) error {
		pieces++
		if len(p) > exportReadSize {
			t.Errorf("a piece of %d bytes, more than %d", len(p), exportReadSize)
		}
		return nil
	}); err != nil || pieces != 2 {
		t.Errorf("ReadExportFile gave %d pieces (%v), want 2", pieces, err)
	}
	if got := read("job-a", 1); !bytes.Equal(got, big) {
		t.Errorf("ReadExportFile: %d bytes that differ from the %d written", len(got), len(big))
	}

	// A job that starts over (its lease ran out) loses the files of the run
	// that stopped.
	if err := db.UpdateExportJob(ctx, "job-a", "node", func(j *store.ExportJob) { j.LeaseUntil = now.Add(-time.Second) }); err != nil {
		t.Fatal(err)
	}
	if got, err := db.ClaimExportJob(ctx, "node-2", now, now.Add(time.Minute)); err != nil || got.ID != "job-a" {
		t.Fatalf("reclaim: %s, %v", got.ID, err)
	}
	if _, err := os.Stat(filepath.Dir(file)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after the job started over its old files are still there: %v", err)
	}
	if err := db.PutExportChunk(ctx, "job-a", "node", 1, 0, []byte("stale\n")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a chunk from the node that lost the job: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Dir(file)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused chunk left a file: %v", err)
	}
	if err := db.PutExportChunk(ctx, "job-a", "node-2", 1, 0, []byte("fresh\n")); err != nil {
		t.Fatal(err)
	}

	// DELETE removes the directory.
	if err := db.DeleteExportJob(ctx, "job-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(file)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after DeleteExportJob the job's directory is still there: %v", err)
	}

	// A file an older smartgate wrote into the database is read from there.
	start("job-old", now.Add(-time.Minute))
	if _, err := db.w.ExecContext(ctx, "INSERT INTO export_chunks (job_id, seq, n, data) VALUES ('job-old', 1, 0, ?), ('job-old', 1, 1, ?)", []byte("one\n"), []byte("two\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.ExecContext(ctx, "INSERT INTO export_files (job_id, seq, type, count, bytes) VALUES ('job-old', 1, 'Patient', 2, 8)"); err != nil {
		t.Fatal(err)
	}
	if got := read("job-old", 1); string(got) != "one\ntwo\n" {
		t.Errorf("a file kept in the database: %q, want %q", got, "one\ntwo\n")
	}

	// Pruning deletes the expired job and sweeps a directory whose job is
	// gone; what is not a job's directory stays.
	orphan := filepath.Join(dir, "job-gone")
	if err := os.MkdirAll(orphan, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(orphan, "1.ndjson"), []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "not a job")
	if err := os.MkdirAll(foreign, 0o700); err != nil {
		t.Fatal(err)
	}
	start("job-live", now.Add(time.Hour))
	if err := db.PutExportChunk(ctx, "job-live", "node", 1, 0, []byte("live\n")); err != nil {
		t.Fatal(err)
	}
	if n, err := db.PruneExports(ctx, now); err != nil || n != 1 {
		t.Errorf("PruneExports = %d, %v; want 1 (job-old)", n, err)
	}
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the directory of a job that is gone survived the prune: %v", err)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("a directory that is not a job's was deleted: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "job-live", "1.ndjson")); err != nil {
		t.Errorf("a running job's file was deleted by the prune: %v", err)
	}
	if _, err := db.jobDir("../escape"); err == nil {
		t.Error("jobDir accepted a job id with a path in it")
	}
}
