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

// TestAuditBulkIndexes: the audit file indexes events by patient and by
// actor in bulk (audit_patient, audit_actor, up to a mark), and ListAudit
// by patient or actor finds every event of it, those indexed and those
// after the mark alike, newest first, by page, with the other filters; an
// audit file made with the indexes on audit_events moves to the bulk
// tables when it opens, and so does one of the first bulk index by
// patient alone.
func TestAuditBulkIndexes(t *testing.T) {
	ctx := context.Background()
	db := migratedSQLite(t)
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	var n int
	if err := db.a.QueryRowContext(ctx, "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('audit_events_patient', 'audit_events_actor')").Scan(&n); err != nil || n != 0 {
		t.Fatalf("a new audit file has %d of audit_events_patient and _actor (%v); its events by patient and actor are in audit_patient and audit_actor", n, err)
	}

	// Three batches: the first brings the index up to date (the writer's
	// first batch does), the next two stay after the mark.
	var want []string // Patient/1's request ids, oldest first
	for b := 0; b < 3; b++ {
		var batch []store.AuditEvent
		for i := 0; i < 6; i++ {
			k := b*6 + i
			e := store.AuditEvent{Time: t0.Add(time.Duration(k) * time.Minute), RequestID: fmt.Sprintf("r%02d", k), Actor: []string{"user:amy", "user:bob", "system"}[i%3],
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
	var upto, indexed, blank, actors int
	if err := db.a.QueryRowContext(ctx, "SELECT (SELECT id FROM audit_indexed_upto), (SELECT COUNT(*) FROM audit_patient), (SELECT COUNT(*) FROM audit_patient WHERE patient = ''), (SELECT COUNT(*) FROM audit_actor)").Scan(&upto, &indexed, &blank, &actors); err != nil {
		t.Fatal(err)
	}
	if upto != 6 || indexed != 4 || blank != 0 || actors != 6 {
		t.Fatalf("after the first batch the mark is %d with %d entries by patient (%d blank) and %d by actor; want 6, 4 (two patients, two events each), 0, 6", upto, indexed, blank, actors)
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
			if f.Patient != "" && e.Patient != f.Patient || f.Actor != "" && e.Actor != f.Actor {
				t.Errorf("%s: event %s of %q by %q", name, e.RequestID, e.Patient, e.Actor)
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
	// Actor user:bob is i%3 == 1: k = 1, 4, 7, 10, 13, 16.
	check("user:bob", store.AuditFilter{Actor: "user:bob"}, []string{"r16", "r13", "r10", "r07", "r04", "r01"})
	check("user:bob, searches", store.AuditFilter{Actor: "user:bob", Action: "fhir.search"}, []string{"r13", "r07", "r01"})
	check("user:amy and Patient/1", store.AuditFilter{Actor: "user:amy", Patient: "Patient/1"}, want)
	check("user:amy and Patient/2", store.AuditFilter{Actor: "user:amy", Patient: "Patient/2"}, nil)

	// Brought up to date again: every entry once, and the same answers.
	if err := db.txOn(ctx, db.a, 0, func(tx *sql.Tx) error {
		if err := indexAuditBulk(ctx, tx); err != nil {
			return err
		}
		return indexAuditBulk(ctx, tx)
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.a.QueryRowContext(ctx, "SELECT (SELECT id FROM audit_indexed_upto), (SELECT COUNT(*) FROM audit_patient), (SELECT COUNT(*) FROM audit_actor)").Scan(&upto, &indexed, &actors); err != nil {
		t.Fatal(err)
	}
	if upto != 18 || indexed != 12 || actors != 18 {
		t.Errorf("up to date: mark %d with %d entries by patient and %d by actor, want 18, 12 and 18", upto, indexed, actors)
	}
	check("Patient/1, all indexed", store.AuditFilter{Patient: "Patient/1"}, want)
	check("user:bob, all indexed", store.AuditFilter{Actor: "user:bob"}, []string{"r16", "r13", "r10", "r07", "r04", "r01"})

	// An audit file from before, with its index on audit_events.
	path := filepath.Join(t.TempDir(), "old.db")
	auditFileAs(t, path, `CREATE INDEX audit_events_patient ON audit_events (patient, at)`)
	db2 := migrated(t, path)
	moved := func(db *DB, name string, wantPatient, wantActor []string) {
		t.Helper()
		if err := db.a.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM sqlite_master WHERE name IN ('audit_events_patient', 'audit_events_actor', 'audit_patient_upto')), (SELECT id FROM audit_indexed_upto)").Scan(&n, &upto); err != nil {
			t.Fatal(err)
		}
		if n != 0 || upto != 3 {
			t.Errorf("%s: %d old indexes or marks left, mark %d; want none and 3", name, n, upto)
		}
		got, err := db.ListAudit(ctx, store.AuditFilter{Patient: "Patient/1"})
		if err != nil || !slices.Equal(ids(got), wantPatient) {
			t.Errorf("%s, Patient/1: %v %v, want %v", name, ids(got), err, wantPatient)
		}
		got, err = db.ListAudit(ctx, store.AuditFilter{Actor: "user:u"})
		if err != nil || !slices.Equal(ids(got), wantActor) {
			t.Errorf("%s, user:u: %v %v, want %v", name, ids(got), err, wantActor)
		}
		// Every entry is in the bulk tables, not only found after the mark.
		var p, a int
		if err := db.a.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM audit_patient), (SELECT COUNT(*) FROM audit_actor)").Scan(&p, &a); err != nil || p != len(wantPatient) || a != len(wantActor) {
			t.Errorf("%s: %d entries by patient and %d by actor (%v), want %d and %d", name, p, a, err, len(wantPatient), len(wantActor))
		}
	}
	moved(db2, "an audit file from before", []string{"o3", "o1"}, []string{"o3", "o2", "o1"})

	// A file of the first bulk index, by patient alone: its mark at the
	// first event, the index by actor still on audit_events.
	path = filepath.Join(t.TempDir(), "first.db")
	auditFileAs(t, path, `CREATE TABLE audit_patient (patient TEXT NOT NULL, at INTEGER NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (patient, at, id)) WITHOUT ROWID;
CREATE TABLE audit_patient_upto (one INTEGER PRIMARY KEY CHECK (one = 1), id INTEGER NOT NULL);
INSERT INTO audit_patient VALUES ('Patient/1', 1, 1);
INSERT INTO audit_patient_upto VALUES (1, 1)`)
	moved(migrated(t, path), "an audit file of the first bulk index", []string{"o3", "o1"}, []string{"o3", "o2", "o1"})
}

// auditFileAs writes the audit file of the SQLite database at path as an
// older smartgate left it: audit_events, its indexes by time and by actor,
// three events (o1 and o3 of Patient/1, all three by user:u), and extra.
func auditFileAs(t *testing.T, path, extra string) {
	t.Helper()
	a, err := sql.Open("sqlite", "file:"+AuditFile(path)+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.ExecContext(context.Background(), `CREATE TABLE audit_events (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, request_id TEXT NOT NULL,
  actor TEXT NOT NULL, client_id TEXT NOT NULL, patient TEXT NOT NULL, action TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_actor ON audit_events (actor, at);
INSERT INTO audit_events (at, request_id, actor, client_id, patient, action, outcome, detail) VALUES
  (1, 'o1', 'user:u', 'app', 'Patient/1', 'fhir.read', 'success', '{}'),
  (2, 'o2', 'user:u', 'app', '', 'token.issue', 'success', '{}'),
  (3, 'o3', 'user:u', 'app', 'Patient/1', 'fhir.read', 'success', '{}');
`+extra); err != nil {
		t.Fatal(err)
	}
}
