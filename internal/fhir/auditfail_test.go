package fhir_test

import (
	"context"
	"encoding/json"
	"maps"
	"testing"
	"time"

	"smartgate/internal/audit"
	"smartgate/internal/fhir"
	"smartgate/internal/fhir/devdata"
	"smartgate/internal/store"
)

// TestAuditRecordsFailures: a vread, a history or a $docref that is refused
// leaves a failure in the audit trail, as a read or a search does, and one
// that succeeds a success; none is recorded twice.
func TestAuditRecordsFailures(t *testing.T) {
	var a audited
	f := newFixture(t, "sqlite", a.deps)
	st, aw := a.st, a.w
	amy, jose := devdata.Patients()[0], devdata.Patients()[1]
	sys := f.token("system/*.rs", "", "")
	mine := f.token("patient/*.rs", amy, "")

	steps := []struct {
		name, path, tok string
		status          int
		action, outcome string
		detail          map[string]string
	}{
		{"vread of a version that does not exist", "/Patient/" + amy + "/_history/99", sys, 404,
			"fhir.vread", "failure", map[string]string{"resource": "Patient/" + amy, "version": "99"}},
		{"vread of another patient's record", "/Patient/" + jose + "/_history/1", mine, 404,
			"fhir.vread", "failure", map[string]string{"resource": "Patient/" + jose, "version": "1"}},
		{"vread", "/Patient/" + amy + "/_history/1", sys, 200,
			"fhir.vread", "success", map[string]string{"resource": "Patient/" + amy, "version": "1"}},
		{"history with a bad _count", "/Patient/" + amy + "/_history?_count=x", sys, 400,
			"fhir.history", "failure", map[string]string{"type": "Patient", "id": amy}},
		{"history of another patient's record", "/Patient/" + jose + "/_history", mine, 404,
			"fhir.history", "failure", map[string]string{"type": "Patient", "id": jose}},
		{"history", "/Patient/" + amy + "/_history", sys, 200,
			"fhir.history", "success", map[string]string{"type": "Patient", "id": amy}},
		{"$docref without a patient", "/DocumentReference/$docref", sys, 400,
			"fhir.operation", "failure", map[string]string{"operation": "docref", "patient": ""}},
		{"$docref with a bad start", "/DocumentReference/$docref?patient=" + amy + "&start=yesterday", sys, 400,
			"fhir.operation", "failure", map[string]string{"operation": "docref", "patient": amy}},
		{"$docref", "/DocumentReference/$docref?patient=" + amy, sys, 200,
			"fhir.operation", "success", map[string]string{"operation": "docref", "patient": amy}},
	}
	for _, s := range steps {
		if r := f.do("GET", s.path, s.tok, nil); r.status != s.status {
			t.Fatalf("%s: GET %s: %d %s, want %d", s.name, s.path, r.status, r.body, s.status)
		}
	}
	aw.Close()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	// ListAudit is newest first; the steps ran oldest first.
	var got []store.AuditEvent
	for i := len(evs) - 1; i >= 0; i-- {
		switch evs[i].Action {
		case "fhir.vread", "fhir.history", "fhir.operation":
			got = append(got, evs[i])
		}
	}
	if len(got) != len(steps) {
		t.Fatalf("%d events of vread, history and $docref, want %d (one a request): %+v", len(got), len(steps), got)
	}
	for i, s := range steps {
		e := got[i]
		var detail map[string]string
		if err := json.Unmarshal([]byte(e.Detail), &detail); err != nil {
			t.Fatalf("%s: detail %q: %v", s.name, e.Detail, err)
		}
		if e.Action != s.action || e.Outcome != s.outcome || !maps.Equal(detail, s.detail) || e.ClientID != "app" {
			t.Errorf("%s: event %s %s %v (client %q), want %s %s %v (client app)", s.name, e.Action, e.Outcome, detail, e.ClientID, s.action, s.outcome, s.detail)
		}
	}
}

// audited gives a fixture an audit trail: newFixture(t, backend, a.deps),
// then a.w.Close() writes what is queued and a.st.ListAudit reads it.
type audited struct {
	st store.Audit
	w  *audit.Writer
}

func (a *audited) deps(d *fhir.Deps) {
	a.st = d.Store.(store.Audit)
	a.w = audit.New(a.st, audit.Options{BatchSize: 16, FlushInterval: 10 * time.Millisecond, QueueSize: 64})
	d.Audit = a.w
}
