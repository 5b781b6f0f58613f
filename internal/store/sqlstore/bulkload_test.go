package sqlstore

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"smartgate/internal/pgtest"
	"smartgate/internal/store"
)

// indexDefs is every index of the FHIR tables: name -> CREATE statement.
func indexDefs(t *testing.T, db *DB) map[string]string {
	t.Helper()
	rows, err := db.w.QueryContext(context.Background(), "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name LIKE 'fhir%' AND sql IS NOT NULL")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			t.Fatal(err)
		}
		out[name] = def
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// putObservations creates Observations from..to-1 of patient p through the
// bulk path, each with a code, a date and a reference to p.
func putObservations(t *testing.T, db *DB, p string, from, to int) {
	t.Helper()
	ctx := context.Background()
	var ws []store.Write
	for i := from; i < to; i++ {
		id := fmt.Sprintf("%s-o%d", p, i)
		ws = append(ws, store.Write{Type: "Observation", ID: id,
			Body: []byte(`{"resourceType":"Observation","id":"` + id + `","status":"final"}`),
			Index: store.Index{
				Tokens:   []store.TokenIndex{{Param: "code", System: "http://loinc.org", Code: fmt.Sprint(i % 3)}},
				Dates:    []store.DateIndex{{Param: "date", Low: int64(i) * 1e12, High: int64(i)*1e12 + 1}},
				Refs:     []store.RefIndex{{Param: "subject", Type: "Patient", ID: p}},
				Patients: []string{p},
			}})
	}
	err := db.WriteFHIR(ctx, func(tx store.FHIRTx) error {
		return tx.(interface {
			PutNew(context.Context, []store.Write) error
		}).PutNew(ctx, ws)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// codeSearch counts patient p's Observations of code c (the code filter
// and the compartment are what the deferred indexes serve).
func codeSearch(t *testing.T, db *DB, p, c string) int {
	t.Helper()
	res, err := db.Search(context.Background(), store.Query{Type: "Observation",
		Where: store.And{store.InCompartment{Patients: []string{p}}, store.TokenMatch{Param: "code", System: "http://loinc.org", Code: c}},
		Page:  store.Page{Count: 100, Total: true}})
	if err != nil {
		t.Fatal(err)
	}
	return res.Total
}

// TestBulkLoadCache: the SQLite writer keeps SQLite's default page cache
// (a server's writes are small) until a bulk load asks for 32 MiB.
func TestBulkLoadCache(t *testing.T) {
	ctx := context.Background()
	db := migratedSQLite(t)
	size := func() int {
		var n int
		if err := db.w.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := size(); n != -2000 {
		t.Errorf("writer cache_size before a bulk load = %d, want SQLite's default -2000", n)
	}
	if _, err := db.BeginBulkLoad(ctx); err != nil {
		t.Fatal(err)
	}
	if n := size(); n != -bulkLoadCacheKiB {
		t.Errorf("writer cache_size during a bulk load = %d, want %d", n, -bulkLoadCacheKiB)
	}
}

// TestBulkLoadDefersIndexes: a bulk load into an empty store drops the
// deferred indexes and lists them; searches meanwhile answer the same;
// the build brings back exactly the indexes the migrations made; a load
// into a store with resources keeps every index.
func TestBulkLoadDefersIndexes(t *testing.T) {
	ctx := context.Background()
	db := migratedSQLite(t)
	want := indexDefs(t, db)
	for _, name := range deferredIndexes {
		if want[name] == "" {
			t.Fatalf("deferred index %s is not in the schema (renamed by a migration?)", name)
		}
	}

	deferred, err := db.BeginBulkLoad(ctx)
	if err != nil || !deferred {
		t.Fatalf("BeginBulkLoad on an empty store = %v, %v; want deferred", deferred, err)
	}
	during := indexDefs(t, db)
	for _, name := range deferredIndexes {
		if _, ok := during[name]; ok {
			t.Errorf("index %s still there during the load", name)
		}
	}
	if len(during) != len(want)-len(deferredIndexes) {
		t.Errorf("during the load %d indexes, want %d (the others stay)", len(during), len(want)-len(deferredIndexes))
	}
	listed, err := db.DeferredIndexes(ctx)
	if wantListed := slices.Sorted(slices.Values(deferredIndexes)); err != nil || !slices.Equal(listed, wantListed) {
		t.Errorf("DeferredIndexes = %v, %v; want %v", listed, err, wantListed)
	}
	putObservations(t, db, "p1", 0, 30)
	putObservations(t, db, "p2", 0, 9)
	if n := codeSearch(t, db, "p1", "1"); n != 10 {
		t.Errorf("search during the load: %d of p1's Observations with code 1, want 10", n)
	}
	// An access check by code (a granular scope) names the code index too.
	if _, err := db.ReadResource(ctx, "Observation", "p1-o1", store.TokenMatch{Param: "code", System: "http://loinc.org", Code: "1"}); err != nil {
		t.Errorf("read with an access check by code during the load: %v", err)
	}
	if _, err := db.ReadResource(ctx, "Observation", "p1-o2", store.TokenMatch{Param: "code", System: "http://loinc.org", Code: "1"}); err != store.ErrAccessDenied {
		t.Errorf("read of another code's Observation during the load: %v, want ErrAccessDenied", err)
	}

	built, err := db.BuildDeferredIndexes(ctx)
	if err != nil || len(built) != len(deferredIndexes) {
		t.Fatalf("BuildDeferredIndexes = %v, %v", built, err)
	}
	if got := indexDefs(t, db); !maps.Equal(got, want) {
		t.Errorf("indexes after the build differ from the migrated schema:\n got %v\nwant %v", got, want)
	}
	if listed, err := db.DeferredIndexes(ctx); err != nil || len(listed) != 0 {
		t.Errorf("DeferredIndexes after the build = %v, %v; want none", listed, err)
	}
	if n := codeSearch(t, db, "p1", "1"); n != 10 {
		t.Errorf("search after the build: %d, want 10", n)
	}
	plan := strings.Join(queryPlan(t, db, "SELECT rid FROM fhir_token WHERE res_type = ? AND param = ? AND code = ? AND system = ?", "Observation", "code", "1", "http://loinc.org"), "; ")
	if !strings.Contains(plan, "fhir_token_code") {
		t.Errorf("a code lookup after the build does not use fhir_token_code: %s", plan)
	}
	if again, err := db.BuildDeferredIndexes(ctx); err != nil || len(again) != 0 {
		t.Errorf("a second build = %v, %v; want nothing to do", again, err)
	}

	deferred, err = db.BeginBulkLoad(ctx)
	if err != nil || deferred {
		t.Errorf("BeginBulkLoad on a store with resources = %v, %v; want every index kept", deferred, err)
	}
	if got := indexDefs(t, db); !maps.Equal(got, want) {
		t.Errorf("a load into a store with resources changed the indexes: %v", got)
	}
}

// TestBulkLoadInterrupted: a load that stops before its build (a crash)
// leaves the indexes listed, across a reopen; the next load into the
// now non-empty store builds them before it writes.
func TestBulkLoadInterrupted(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "test.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	want := indexDefs(t, db)
	if deferred, err := db.BeginBulkLoad(ctx); err != nil || !deferred {
		t.Fatalf("BeginBulkLoad = %v, %v", deferred, err)
	}
	putObservations(t, db, "p1", 0, 5)
	db.Close() // no build: the process died

	db, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if listed, err := db.DeferredIndexes(ctx); err != nil || len(listed) != len(deferredIndexes) {
		t.Fatalf("after a reopen DeferredIndexes = %v, %v; want all %d", listed, err, len(deferredIndexes))
	}
	deferred, err := db.BeginBulkLoad(ctx)
	if err != nil || deferred {
		t.Fatalf("BeginBulkLoad after an interrupted load = %v, %v; want the indexes built, not deferred", deferred, err)
	}
	if got := indexDefs(t, db); !maps.Equal(got, want) {
		t.Errorf("indexes after the next load began differ from the schema:\n got %v\nwant %v", got, want)
	}
	if listed, _ := db.DeferredIndexes(ctx); len(listed) != 0 {
		t.Errorf("still listed: %v", listed)
	}
}

// TestBulkLoadPostgres: PostgreSQL loads with its indexes.
func TestBulkLoadPostgres(t *testing.T) {
	pgtest.Shared(t)
	ctx := context.Background()
	db, err := Open(ctx, pgtest.NewDatabase(t), Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if deferred, err := db.BeginBulkLoad(ctx); err != nil || deferred {
		t.Errorf("BeginBulkLoad on PostgreSQL = %v, %v; want not deferred", deferred, err)
	}
	if listed, err := db.DeferredIndexes(ctx); err != nil || len(listed) != 0 {
		t.Errorf("DeferredIndexes on PostgreSQL = %v, %v", listed, err)
	}
}

// TestBulkShapes: rows go out in the fixed statement sizes whatever their
// count (counts around each size's edges), before a bulk load prepared the
// statements and after, and every row lands once.
func TestBulkShapes(t *testing.T) {
	ctx := context.Background()
	db := migratedSQLite(t)
	count := func(table string) int {
		var n int
		if err := db.r.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	total := 0
	for i, n := range []int{1, 3, 4, 5, 63, 64, 65, 255, 256, 257, 341, 600} {
		if i == 6 {
			if _, err := db.BeginBulkLoad(ctx); err != nil {
				t.Fatal(err)
			}
			if db.bulkStmts.Load() == nil {
				t.Fatal("BeginBulkLoad prepared no bulk statements")
			}
		}
		p := fmt.Sprintf("p%d", i)
		putObservations(t, db, p, 0, n)
		total += n
		for _, table := range []string{"fhir_resources", "fhir_history", "fhir_token", "fhir_date", "fhir_ref", "fhir_compartment"} {
			if got := count(table); got != total {
				t.Fatalf("after %d resources (batch of %d): %s has %d rows", total, n, table, got)
			}
		}
	}
	if _, err := db.BuildDeferredIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	if got := codeSearch(t, db, "p11", "0"); got != 200 {
		t.Errorf("p11's Observations of code 0 = %d, want 200", got)
	}
}
