package synth

import (
	"context"
	"path/filepath"
	"testing"

	"smartgate/internal/fhir"
	"smartgate/internal/store"
	"smartgate/internal/store/sqlstore"
)

// TestLoad stores a small set in a real SQLite store, then runs again
// (nothing written), then with more patients (only the new ones and the
// Groups written), and reads a patient's compartment back.
func TestLoad(t *testing.T) {
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "smartgate.db"), sqlstore.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	api := fhir.New(fhir.Deps{Store: db, Base: "http://127.0.0.1:8080/fhir"})
	load := func(patients, batch, writers int) Summary {
		t.Helper()
		l := &Loader{API: api, Generator: New(Options{Patients: patients, Seed: 11}), Batch: batch, Writers: writers}
		sum, err := l.Run(ctx)
		if err != nil {
			t.Fatalf("load of %d patients: %v", patients, err)
		}
		if p, n := l.Progress(); p != int64(patients) || n != int64(sum.Resources) {
			t.Errorf("Progress() = %d patients, %d resources; want %d, %d", p, n, patients, sum.Resources)
		}
		return sum
	}
	first := load(3, 100, 1)
	if first.Created != first.Resources || first.Updated+first.Unchanged != 0 || first.Resources < 300 {
		t.Fatalf("first load: %+v", first)
	}
	// Into the empty store: the search indexes built once, at the end.
	if left, err := db.DeferredIndexes(ctx); err != nil || len(left) != 0 || first.IndexSeconds <= 0 {
		t.Errorf("first load: index build %.3f s, left unbuilt %v (%v); want built at the end", first.IndexSeconds, left, err)
	}
	total := 0
	for _, n := range first.ByType {
		total += n
	}
	if total != first.Resources {
		t.Errorf("by type adds up to %d, not %d", total, first.Resources)
	}
	again := load(3, 1000, 1)
	if again.Unchanged != first.Resources || again.Created+again.Updated != 0 || again.IndexSeconds != 0 {
		t.Errorf("second load of the same set: %+v; want everything unchanged, with the indexes in place", again)
	}
	more := load(4, 50, 3) // several writers (as on PostgreSQL), small batches
	// The new chart is created; the Group of everyone changes, a cohort
	// only when the new patient is in it.
	if more.Updated < 1 || more.Updated > len(more.Groups) || more.Created != more.Resources-first.Resources {
		t.Errorf("load of 4 patients after 3: created %d, updated %d (want the new chart, %d resources, and 1 to %d Groups)",
			more.Created, more.Updated, more.Resources-first.Resources, len(more.Groups))
	}
	res, err := db.Search(ctx, store.Query{Type: "Observation", Where: store.InCompartment{Patients: []string{"syn-11-4"}}, Page: store.Page{Count: 1, Total: true}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total < 20 {
		t.Errorf("patient syn-11-4 has %d Observations in its compartment", res.Total)
	}
	r, err := db.ReadResource(ctx, "Group", "syn-11-all", nil)
	if err != nil || r.Version != 2 {
		t.Errorf("Group syn-11-all: version %d, %v; want 2 (created, then updated with the 4th patient)", r.Version, err)
	}
}
