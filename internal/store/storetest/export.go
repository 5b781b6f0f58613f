package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"smartgate/internal/store"
)

func exportTests() []struct {
	name string
	fn   func(t *testing.T, b Backend)
} {
	return []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"ExportJobLifecycle", testExportLifecycle},
		{"ExportClaimOncePerJob", testExportClaimOnce},
		{"ExportLeaseTakeover", testExportLeaseTakeover},
		{"ExportDeleteAndPrune", testExportDeleteAndPrune},
	}
}

func newJob(id, client string, now time.Time) store.ExportJob {
	return store.ExportJob{ID: id, ClientID: client, Status: store.ExportAccepted, Request: "https://ehr.example/fhir/$export?_type=Patient",
		Params: []byte(`{"kind":"system"}`), TransactionTime: now, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)}
}

func testExportLifecycle(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	j := newJob("job-1", "lab", now)
	if err := s.CreateExportJob(c, j); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateExportJob(c, j); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second CreateExportJob with the same id: %v, want ErrConflict", err)
	}
	got, err := s.GetExportJob(c, "job-1")
	if err != nil || got.ClientID != "lab" || got.Status != store.ExportAccepted || !got.TransactionTime.Equal(now) || string(got.Params) != `{"kind":"system"}` {
		t.Fatalf("GetExportJob = %+v, %v", got, err)
	}
	if _, err := s.GetExportJob(c, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown job: %v, want ErrNotFound", err)
	}
	if n, err := s.CountActiveExports(c, "lab"); err != nil || n != 1 {
		t.Errorf("CountActiveExports(lab) = %d, %v; want 1", n, err)
	}
	if n, err := s.CountActiveExports(c, "other"); err != nil || n != 0 {
		t.Errorf("CountActiveExports(other) = %d, %v; want 0", n, err)
	}
	claimed, err := s.ClaimExportJob(c, "node-a", now, now.Add(time.Minute))
	if err != nil || claimed.ID != "job-1" || claimed.Status != store.ExportRunning || claimed.Owner != "node-a" {
		t.Fatalf("ClaimExportJob = %+v, %v", claimed, err)
	}
	if _, err := s.ClaimExportJob(c, "node-b", now, now.Add(time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim with the only job leased: %v, want ErrNotFound", err)
	}
	// Chunks of two files, read back in order.
	chunks := [][]byte{[]byte("{\"resourceType\":\"Patient\",\"id\":\"1\"}\n"), []byte("{\"resourceType\":\"Patient\",\"id\":\"2\"}\n"), bytes.Repeat([]byte("x"), 70_000)}
	for i, ch := range chunks {
		if err := s.PutExportChunk(c, "job-1", "node-a", 1, i, ch); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutExportChunk(c, "job-1", "node-b", 1, 3, []byte("intruder")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("chunk from a node that does not own the job: %v, want ErrNotFound", err)
	}
	if err := s.AddExportFile(c, "node-a", store.ExportFile{JobID: "job-1", Seq: 1, Type: "Patient", Count: 2, Bytes: 70_070}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutExportChunk(c, "job-1", "node-a", 2, 0, []byte("{\"resourceType\":\"Observation\"}\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddExportFile(c, "node-a", store.ExportFile{JobID: "job-1", Seq: 2, Type: "Observation", Count: 1, Bytes: 31}); err != nil {
		t.Fatal(err)
	}
	files, err := s.ListExportFiles(c, "job-1")
	if err != nil || len(files) != 2 || files[0].Type != "Patient" || files[0].Count != 2 || files[1].Seq != 2 || files[1].Bytes != 31 {
		t.Fatalf("ListExportFiles = %+v, %v", files, err)
	}
	var got1 [][]byte
	if err := s.ReadExportFile(c, "job-1", 1, func(ch []byte) error { got1 = append(got1, bytes.Clone(ch)); return nil }); err != nil {
		t.Fatal(err)
	}
	// The pieces may be the chunks as written (PostgreSQL) or other
	// pieces of the same bytes (SQLite reads a file).
	if !bytes.Equal(bytes.Join(got1, nil), bytes.Join(chunks, nil)) {
		t.Errorf("ReadExportFile returned %d pieces whose bytes differ from what was written", len(got1))
	}
	if err := s.ReadExportFile(c, "job-1", 9, func([]byte) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown file: %v, want ErrNotFound", err)
	}
	stop := errors.New("stop")
	if err := s.ReadExportFile(c, "job-1", 1, func([]byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("ReadExportFile does not return fn's error: %v", err)
	}
	// Progress, then completion.
	if err := s.UpdateExportJob(c, "job-1", "node-a", func(j *store.ExportJob) { j.Progress = "3 resources"; j.LeaseUntil = now.Add(2 * time.Minute) }); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateExportJob(c, "job-1", "node-b", func(j *store.ExportJob) { j.Progress = "stolen" }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateExportJob by another node: %v, want ErrNotFound", err)
	}
	if got, _ := s.GetExportJob(c, "job-1"); got.Progress != "3 resources" || !got.LeaseUntil.Equal(now.Add(2*time.Minute)) {
		t.Errorf("after update: %+v", got)
	}
	if err := s.UpdateExportJob(c, "job-1", "node-a", func(j *store.ExportJob) { j.Status = store.ExportCompleted; j.Progress = "" }); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetExportJob(c, "job-1"); got.Status != store.ExportCompleted || got.Owner != "node-a" {
		t.Errorf("completed job: %+v", got)
	}
	if n, _ := s.CountActiveExports(c, "lab"); n != 0 {
		t.Errorf("CountActiveExports after completion = %d, want 0", n)
	}
	// A completed job is no longer the owner's to change, nor claimable.
	if err := s.UpdateExportJob(c, "job-1", "node-a", func(j *store.ExportJob) { j.Status = store.ExportFailed }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update of a completed job: %v, want ErrNotFound", err)
	}
	if _, err := s.ClaimExportJob(c, "node-b", now.Add(time.Hour), now.Add(2*time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim of a completed job: %v, want ErrNotFound", err)
	}
}

func testExportClaimOnce(t *testing.T, b Backend) {
	s, dsn := migrated(t, b)
	other := b.Open(t, dsn)
	c := ctx(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := range 4 {
		if err := s.CreateExportJob(c, newJob(fmt.Sprintf("job-%d", i), "lab", now.Add(time.Duration(i)*time.Millisecond))); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for i := range 6 {
		st := s
		if i%2 == 1 {
			st = other
		}
		owner := fmt.Sprintf("node-%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, err := st.ClaimExportJob(c, owner, now, now.Add(time.Minute))
			if errors.Is(err, store.ErrNotFound) {
				return
			}
			if err != nil {
				t.Errorf("claim: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if prev, dup := seen[j.ID]; dup {
				t.Errorf("%s claimed by %s and %s", j.ID, prev, owner)
			}
			seen[j.ID] = owner
		}()
	}
	wg.Wait()
	if len(seen) != 4 {
		t.Errorf("%d of 4 jobs claimed by 6 nodes: %v", len(seen), seen)
	}
}

func testExportLeaseTakeover(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.CreateExportJob(c, newJob("job-1", "lab", now)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimExportJob(c, "node-a", now, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutExportChunk(c, "job-1", "node-a", 1, 0, []byte("partial")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddExportFile(c, "node-a", store.ExportFile{JobID: "job-1", Seq: 1, Type: "Patient", Count: 1, Bytes: 7}); err != nil {
		t.Fatal(err)
	}
	// Before the lease ends nobody else gets it; after, node-b takes over
	// and the partial output is gone.
	if _, err := s.ClaimExportJob(c, "node-b", now.Add(30*time.Second), now.Add(90*time.Second)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim before the lease ended: %v, want ErrNotFound", err)
	}
	j, err := s.ClaimExportJob(c, "node-b", now.Add(2*time.Minute), now.Add(3*time.Minute))
	if err != nil || j.ID != "job-1" || j.Owner != "node-b" {
		t.Fatalf("claim after the lease ended = %+v, %v", j, err)
	}
	if files, _ := s.ListExportFiles(c, "job-1"); len(files) != 0 {
		t.Errorf("the files of the first run survived the takeover: %+v", files)
	}
	if err := s.UpdateExportJob(c, "job-1", "node-a", func(j *store.ExportJob) { j.Progress = "late" }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the old owner can still update the job: %v", err)
	}
	if err := s.PutExportChunk(c, "job-1", "node-a", 1, 0, []byte("late")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the old owner can still write chunks: %v", err)
	}
}

func testExportDeleteAndPrune(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, id := range []string{"old", "new", "gone"} {
		j := newJob(id, "lab", now)
		if id == "old" {
			j.ExpiresAt = now.Add(-time.Second)
		}
		if err := s.CreateExportJob(c, j); err != nil {
			t.Fatal(err)
		}
	}
	j, err := s.ClaimExportJob(c, "node-a", now, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutExportChunk(c, j.ID, "node-a", 1, 0, []byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddExportFile(c, "node-a", store.ExportFile{JobID: j.ID, Seq: 1, Type: "Patient", Count: 1, Bytes: 4}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteExportJob(c, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteExportJob(c, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
	n, err := s.PruneExports(c, now)
	if err != nil || n != 1 {
		t.Fatalf("PruneExports = %d, %v; want 1 (the expired job)", n, err)
	}
	if _, err := s.GetExportJob(c, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired job after prune: %v", err)
	}
	if files, _ := s.ListExportFiles(c, "old"); len(files) != 0 {
		t.Errorf("files of a pruned job remain: %+v", files)
	}
	if err := s.ReadExportFile(c, "old", 1, func([]byte) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("file of a pruned job: %v", err)
	}
	if _, err := s.GetExportJob(c, "new"); err != nil {
		t.Errorf("unexpired job pruned: %v", err)
	}
}
