package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"smartgate/internal/store"
)

// TestAuditByPatient: the audit file indexes events by patient in bulk
// (audit_patient, up to a mark), and ListAudit by patient finds every
// event of the patient, those indexed and those after the mark alike,
// newest first, by page, with the other filters; an audit file made with
// the index on audit_events moves to audit_patient when it opens.
func TestAuditByPatient(t *testing.T) {
	ctx := context.Background()
	db := migratedSQLite(t)
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	var n int
	if err := db.a.QueryRowContext(ctx, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit_events_patient'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("a new audit file has audit_events_patient (%d, %v); its events by patient are in audit_patient", n, err)
	}

	// Three batches: the first brings the index up to date (the writer's
	// first batch does), the next two stay after the mark.
	var want []string // Patient/1's request ids, oldest first
	for b := 0; b < 3; b++ {
		var batch []store.AuditEvent
		for i := 0; i < 6; i++ {
			k := b*6 + i
			e := store.AuditEvent{Time: t0.Add(time.Duration(k) * time.Minute), RequestID: fmt.Sprintf("r%02d", k), Actor: "user:u",
				ClientID: "app", Patient: []string{"Patient/1", "Patient/2", ""}[i%3], Action: []string{"fhir.read", "fhir.search"}[k%2], Outcome: "success", Detail: "{}"}
			if e.Patient == "Patient/1" {
				want = append(want, e.RequestID)
			}
			batch = append(batch, e)
		}
		if err := db.AppendAudit(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	var upto, indexed, blank int
	if err := db.a.QueryRowContext(ctx, "SELECT (SELECT id FROM audit_patient_upto), (SELECT COUNT(*) FROM audit_patient), (SELECT COUNT(*) FROM audit_patient WHERE patient = '')").Scan(&upto, &indexed, &blank); err != nil {
		t.Fatal(err)
	}
	if upto != 6 || indexed != 4 || blank != 0 {
		t.Fatalf("after the first batch the mark is %d with %d entries (%d blank); want 6, 4 (two patients, two events each), 0", upto, indexed, blank)
	}

	slices.Reverse(want) // newest first
	ids := func(evs []store.AuditEvent) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.RequestID)
		}
		return out
	}
	check := func(name string, f store.AuditFilter, want []string) {
		t.Helper()
		got, err := db.ListAudit(ctx, f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(ids(got), want) {
			t.Errorf("%s: %v, want %v", name, ids(got), want)
		}
		for _, e := range got {
			if e.Patient != f.Patient {
				t.Errorf("%s: event %s of %q", name, e.RequestID, e.Patient)
			}
		}
	}
	check("Patient/1, indexed and after the mark", store.AuditFilter{Patient: "Patient/1"}, want)

	// By pages of two, across the mark.
	var paged []string
	f := store.AuditFilter{Patient: "Patient/1", Limit: 2}
	for range 10 {
		page, err := db.ListAudit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, ids(page)...)
		last := page[len(page)-1]
		f.BeforeTime, f.BeforeID = last.Time, last.ID
	}
	if !slices.Equal(paged, want) {
		t.Errorf("Patient/1 by pages of two: %v, want %v", paged, want)
	}

	check("Patient/1, reads", store.AuditFilter{Patient: "Patient/1", Action: "fhir.read"}, []string{"r12", "r06", "r00"})
	check("Patient/1, [6m, 13m)", store.AuditFilter{Patient: "Patient/1", Since: t0.Add(6 * time.Minute), Until: t0.Add(13 * time.Minute)}, []string{"r12", "r09", "r06"})
	check("nobody", store.AuditFilter{Patient: "Patient/9"}, nil)

	// Brought up to date again: every entry once, and the same answers.
	if err := db.txOn(ctx, db.a, 0, func(tx *sql.Tx) error {
		if err := indexAuditPatients(ctx, tx); err != nil {
			return err
		}
		return indexAuditPatients(ctx, tx)
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.a.QueryRowContext(ctx, "SELECT (SELECT id FROM audit_patient_upto), (SELECT COUNT(*) FROM audit_patient)").Scan(&upto, &indexed); err != nil {
		t.Fatal(err)
	}
	if upto != 18 || indexed != 12 {
		t.Errorf("up to date: mark %d with %d entries, want 18 and 12", upto, indexed)
	}
	check("Patient/1, all indexed", store.AuditFilter{Patient: "Patient/1"}, want)

	// An audit file from before, with its index on audit_events.
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", "file:"+AuditFile(path)+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.ExecContext(ctx, `CREATE TABLE audit_events (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, request_id TEXT NOT NULL,
  actor TEXT NOT NULL, client_id TEXT NOT NULL, patient TEXT NOT NULL, action TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_patient ON audit_events (patient, at);
INSERT INTO audit_events (at, request_id, actor, client_id, patient, action, outcome, detail) VALUES
  (1, 'o1', 'user:u', 'app', 'Patient/1', 'fhir.read', 'success', '{}'),
  (2, 'o2', 'user:u', 'app', '', 'token.issue', 'success', '{}'),
  (3, 'o3', 'user:u', 'app', 'Patient/1', 'fhir.read', 'success', '{}')`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	db2 := migrated(t, path)
	if err := db2.a.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit_events_patient'), (SELECT id FROM audit_patient_upto), (SELECT COUNT(*) FROM audit_patient)").Scan(&n, &upto, &indexed); err != nil {
		t.Fatal(err)
	}
	if n != 0 || upto != 3 || indexed != 2 {
		t.Errorf("an audit file from before: index left %d, mark %d, %d entries; want 0, 3, 2", n, upto, indexed)
	}
	got, err := db2.ListAudit(ctx, store.AuditFilter{Patient: "Patient/1"})
	if err != nil || !slices.Equal(ids(got), []string{"o3", "o1"}) {
		t.Errorf("an audit file from before, Patient/1: %v %v, want [o3 o1]", ids(got), err)
	}
}
