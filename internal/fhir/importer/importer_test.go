package importer_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"smartgate/internal/fhir"
	"smartgate/internal/fhir/importer"
	"smartgate/internal/pgtest"
	"smartgate/internal/store"
	"smartgate/internal/store/sqlstore"
)

const base = "https://ehr.example.org/fhir"

func TestMain(m *testing.M) { pgtest.Main(m) }

// newStore opens a fresh, migrated SQLite store in a temp dir.
func newStore(t testing.TB) *sqlstore.DB {
	t.Helper()
	return openStore(t, filepath.Join(t.TempDir(), "import.db"))
}

// backends run a test on SQLite and on a database of the throwaway
// PostgreSQL cluster (skipped where PostgreSQL is not installed).
var backends = []string{"sqlite", "postgres"}

func newImporterOn(t *testing.T, backend string, opt importer.Options) (*importer.Importer, *sqlstore.DB) {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "import.db")
	if backend == "postgres" {
		dsn = pgtest.NewDatabase(t)
	}
	st := openStore(t, dsn)
	return importer.New(fhir.New(fhir.Deps{Store: st, Base: base}), opt), st
}

func openStore(t testing.TB, dsn string) *sqlstore.DB {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

func newImporter(t testing.TB, opt importer.Options) (*importer.Importer, *sqlstore.DB) {
	st := newStore(t)
	return importer.New(fhir.New(fhir.Deps{Store: st, Base: base}), opt), st
}

// write puts content in a file named name in a temp dir.
func write(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func patient(id, family string) string {
	idPart := ""
	if id != "" {
		idPart = `"id":"` + id + `",`
	}
	return `{"resourceType":"Patient",` + idPart + `"name":[{"family":"` + family + `","given":["Ann"]}],"gender":"female","birthDate":"1970-01-01"}`
}

func observation(id, patientRef string) string {
	return `{"resourceType":"Observation","id":"` + id + `","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"` + patientRef + `"},"effectiveDateTime":"2024-05-01T10:00:00Z","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`
}

func read(t testing.TB, st store.FHIR, typ, id string) store.Resource {
	t.Helper()
	r, err := st.ReadResource(context.Background(), typ, id, nil)
	if err != nil {
		t.Fatalf("read %s/%s: %v", typ, id, err)
	}
	return r
}

// counts drops what a comparison of counts should not look at.
func counts(fs importer.FileSummary) importer.Counts { return fs.Counts }

func TestNDJSONCountsAndIdempotency(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { testNDJSONCountsAndIdempotency(t, backend) })
	}
}

func testNDJSONCountsAndIdempotency(t *testing.T, backend string) {
	im, st := newImporterOn(t, backend, importer.Options{ChunkSize: 3})
	lines := []string{
		patient("p1", "One"),
		patient("p2", "Two"),
		"",
		observation("o1", "Patient/p1"),
		`{"resourceType":"Observation","id":"bad1","status":"final"}`, // line 5: no code
		patient("", "NoID"),
		`not json`, // line 7
		`{"resourceType":"Nonsense","id":"x"}`,
		observation("o2", "Patient/p2"),
	}
	path := write(t, "data.ndjson", strings.Join(lines, "\n")+"\n")
	ctx := context.Background()

	fs := im.ImportFile(ctx, path)
	if fs.Error != "" {
		t.Fatalf("error: %s", fs.Error)
	}
	want := importer.Counts{Created: 5, Failed: 3, NewIDs: 1}
	if d := cmp.Diff(want, counts(fs)); d != "" {
		t.Errorf("first run counts (-want +got):\n%s", d)
	}
	if fs.Format != "ndjson" {
		t.Errorf("format %q, want ndjson", fs.Format)
	}
	var where []string
	for _, f := range fs.Failures {
		where = append(where, fmt.Sprintf("%s %s", f.Where(), f.Resource))
	}
	if d := cmp.Diff([]string{"line 5 Observation/bad1", "line 7 ", "line 8 Nonsense/x"}, where); d != "" {
		t.Errorf("failures (-want +got):\n%s\n%+v", d, fs.Failures)
	}
	if len(fs.Failures) == 3 {
		if f := fs.Failures[0]; !strings.Contains(f.Reason, "Observation.code") || len(f.Issues) == 0 || f.Issues[0].Expression != "Observation.code" {
			t.Errorf("line 5's failure should name Observation.code with the validation issue: %+v", f)
		}
		if f := fs.Failures[2]; !strings.Contains(f.Reason, "Nonsense") {
			t.Errorf("line 8's failure should name the unsupported type: %+v", f)
		}
	}
	if _, err := st.ReadResource(ctx, "Observation", "bad1", nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the invalid Observation was written (%v)", err)
	}

	// Again: what carries an id is unchanged (no new version), the
	// resource without an id is created again.
	fs = im.ImportFile(ctx, path)
	want = importer.Counts{Created: 1, Unchanged: 4, Failed: 3, NewIDs: 1}
	if d := cmp.Diff(want, counts(fs)); d != "" {
		t.Errorf("second run counts (-want +got):\n%s", d)
	}
	if v := read(t, st, "Patient", "p1").Version; v != 1 {
		t.Errorf("Patient/p1 version %d after a re-run, want 1", v)
	}

	// A changed resource is an update: a new version.
	lines[1] = patient("p2", "Changed")
	path2 := write(t, "changed.ndjson", strings.Join(lines[:2], "\n"))
	fs = im.ImportFile(ctx, path2)
	if d := cmp.Diff(importer.Counts{Unchanged: 1, Updated: 1}, counts(fs)); d != "" {
		t.Errorf("changed run counts (-want +got):\n%s", d)
	}
	p2 := read(t, st, "Patient", "p2")
	if p2.Version != 2 || !strings.Contains(string(p2.Body), "Changed") {
		t.Errorf("Patient/p2 after the update: version %d body %s", p2.Version, p2.Body)
	}
}

// TestUnchangedIgnoresVersionMeta: an exported resource carries
// meta.versionId and meta.lastUpdated; importing it into the server it came
// from changes nothing.
func TestUnchangedIgnoresVersionMeta(t *testing.T) {
	im, st := newImporter(t, importer.Options{})
	ctx := context.Background()
	fs := im.ImportFile(ctx, write(t, "a.ndjson", patient("p1", "One")))
	if fs.Created != 1 {
		t.Fatalf("%+v", fs)
	}
	exported := read(t, st, "Patient", "p1").Body
	var m map[string]any
	if err := json.Unmarshal(exported, &m); err != nil || m["meta"] == nil {
		t.Fatalf("stored body has no meta: %s", exported)
	}
	// Also reordered members and other white space: the same content.
	reordered, _ := json.MarshalIndent(m, "", "  ")
	fs = im.ImportFile(ctx, write(t, "b.json", string(reordered)))
	if d := cmp.Diff(importer.Counts{Unchanged: 1}, counts(fs)); d != "" {
		t.Errorf("re-import of the stored body (-want +got):\n%s\n%+v", d, fs)
	}
	if fs.Format != "resource" {
		t.Errorf("format %q, want resource", fs.Format)
	}
	// A profile added to meta is a change.
	withProfile := strings.Replace(patient("p1", "One"), `"id":"p1",`, `"id":"p1","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},`, 1)
	fs = im.ImportFile(ctx, write(t, "c.json", withProfile))
	if d := cmp.Diff(importer.Counts{Updated: 1}, counts(fs)); d != "" {
		t.Errorf("meta.profile added (-want +got):\n%s", d)
	}
}

func bundle(typ string, entries ...string) string {
	return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
}

func TestCollectionAndBatch(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { testCollectionAndBatch(t, backend) })
	}
}

func testCollectionAndBatch(t *testing.T, backend string) {
	im, st := newImporterOn(t, backend, importer.Options{ChunkSize: 2})
	ctx := context.Background()
	coll := bundle("collection",
		`{"fullUrl":"urn:uuid:1","resource":`+patient("c1", "Coll")+`}`,
		`{"resource":`+observation("co1", "Patient/c1")+`}`,
		`{"resource":{"resourceType":"Patient","id":"c2","birthDate":"yesterday"}}`,
		`"not an entry"`,
		`{"fullUrl":"urn:uuid:2"}`,
	)
	fs := im.ImportFile(ctx, write(t, "coll.json", coll))
	if fs.Error != "" || fs.Format != "bundle/collection" {
		t.Fatalf("format %q error %q", fs.Format, fs.Error)
	}
	if d := cmp.Diff(importer.Counts{Created: 2, Failed: 3}, counts(fs)); d != "" {
		t.Errorf("collection counts (-want +got):\n%s", d)
	}
	var entries []int
	for _, f := range fs.Failures {
		if f.Entry == nil || f.Line != 0 {
			t.Errorf("a Bundle failure should give the entry, not a line: %+v", f)
			continue
		}
		entries = append(entries, *f.Entry)
	}
	if d := cmp.Diff([]int{2, 3, 4}, entries); d != "" {
		t.Errorf("failed entries (-want +got):\n%s", d)
	}

	batch := bundle("batch",
		`{"resource":`+patient("b1", "Batch")+`,"request":{"method":"PUT","url":"Patient/b1"}}`,
		`{"resource":`+patient("", "Posted")+`,"request":{"method":"POST","url":"Patient"}}`,
		`{"request":{"method":"DELETE","url":"Patient/c1"}}`,
		`{"request":{"method":"DELETE","url":"Patient/never"}}`,
		`{"resource":`+patient("b3", "Other")+`,"request":{"method":"PUT","url":"Patient/b2"}}`,
		`{"request":{"method":"GET","url":"Patient/b1"}}`,
		`{"resource":`+patient("", "Cond")+`,"request":{"method":"POST","url":"Patient","ifNoneExist":"family=Batch"}}`,
	)
	path := write(t, "batch.json", batch)
	fs = im.ImportFile(ctx, path)
	if d := cmp.Diff(importer.Counts{Created: 2, Deleted: 1, Unchanged: 1, Failed: 3, NewIDs: 1}, counts(fs)); d != "" {
		t.Errorf("batch counts (-want +got):\n%s\n%+v", d, fs.Failures)
	}
	if _, err := st.ReadResource(ctx, "Patient", "c1", nil); !errors.Is(err, store.ErrGone) {
		t.Errorf("Patient/c1 after DELETE: %v, want gone", err)
	}
	// Again: PUT unchanged, POST creates again, DELETE of a deleted
	// resource changes nothing, the conditional create matches.
	fs = im.ImportFile(ctx, path)
	if d := cmp.Diff(importer.Counts{Created: 1, Unchanged: 3, Failed: 3, NewIDs: 1}, counts(fs)); d != "" {
		t.Errorf("batch again (-want +got):\n%s\n%+v", d, fs.Failures)
	}
}

func TestTransaction(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { testTransaction(t, backend) })
	}
}

func testTransaction(t *testing.T, backend string) {
	im, st := newImporterOn(t, backend, importer.Options{})
	ctx := context.Background()
	tx := bundle("transaction",
		`{"fullUrl":"urn:uuid:6a0f0b2e-0000-4000-8000-000000000001","resource":`+patient("", "Tx")+`,"request":{"method":"POST","url":"Patient"}}`,
		`{"resource":`+observation("t-o1", "urn:uuid:6a0f0b2e-0000-4000-8000-000000000001")+`,"request":{"method":"PUT","url":"Observation/t-o1"}}`,
		`{"resource":`+patient("t-p2", "Two")+`,"request":{"method":"PUT","url":"Patient/t-p2"}}`,
	)
	path := write(t, "tx.json", tx)
	fs := im.ImportFile(ctx, path)
	if fs.Error != "" || fs.Format != "bundle/transaction" {
		t.Fatalf("format %q error %q", fs.Format, fs.Error)
	}
	if d := cmp.Diff(importer.Counts{Created: 3, NewIDs: 1}, counts(fs)); d != "" {
		t.Errorf("transaction counts (-want +got):\n%s\n%+v", d, fs.Failures)
	}
	obs := read(t, st, "Observation", "t-o1")
	var o struct {
		Subject struct{ Reference string } `json:"subject"`
	}
	_ = json.Unmarshal(obs.Body, &o)
	if !strings.HasPrefix(o.Subject.Reference, "Patient/") {
		t.Errorf("the urn:uuid reference was not resolved: subject %q", o.Subject.Reference)
	} else {
		read(t, st, "Patient", strings.TrimPrefix(o.Subject.Reference, "Patient/"))
	}

	// Again: the POST creates a new Patient, so the Observation that
	// points at it changes; the other PUT is unchanged.
	fs = im.ImportFile(ctx, path)
	if d := cmp.Diff(importer.Counts{Created: 1, Updated: 1, Unchanged: 1, NewIDs: 1}, counts(fs)); d != "" {
		t.Errorf("transaction again (-want +got):\n%s", d)
	}

	// A transaction with one bad entry writes nothing.
	bad := bundle("transaction",
		`{"resource":`+patient("t-new", "New")+`,"request":{"method":"PUT","url":"Patient/t-new"}}`,
		`{"resource":`+patient("t-p2", "Changed")+`,"request":{"method":"PUT","url":"Patient/t-p2"}}`,
		`{"resource":{"resourceType":"Observation","id":"t-bad","status":"final"},"request":{"method":"PUT","url":"Observation/t-bad"}}`,
	)
	fs = im.ImportFile(ctx, write(t, "bad.json", bad))
	if d := cmp.Diff(importer.Counts{Failed: 3}, counts(fs)); d != "" {
		t.Errorf("failed transaction counts (-want +got):\n%s", d)
	}
	if len(fs.Failures) != 1 || fs.Failures[0].Entry == nil || *fs.Failures[0].Entry != 2 || !strings.Contains(fs.Failures[0].Reason, "nothing in the transaction was applied") {
		t.Errorf("failure should name entry 2 and say nothing was applied: %+v", fs.Failures)
	}
	if _, err := st.ReadResource(ctx, "Patient", "t-new", nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Patient/t-new exists after a failed transaction (%v)", err)
	}
	if r := read(t, st, "Patient", "t-p2"); r.Version != 1 || strings.Contains(string(r.Body), "Changed") {
		t.Errorf("Patient/t-p2 was changed by a failed transaction: version %d", r.Version)
	}
}

func TestTransactionTooLarge(t *testing.T) {
	im, _ := newImporter(t, importer.Options{})
	var entries []string
	for i := 0; i <= fhir.MaxBundleEntries; i++ {
		entries = append(entries, fmt.Sprintf(`{"resource":%s,"request":{"method":"PUT","url":"Patient/p%d"}}`, patient(fmt.Sprintf("p%d", i), "Big"), i))
	}
	fs := im.ImportFile(context.Background(), write(t, "big.json", bundle("transaction", entries...)))
	if !strings.Contains(fs.Error, "more than 1000 entries") || !strings.Contains(fs.Error, "batch") || !strings.Contains(fs.Error, "NDJSON") {
		t.Errorf("error %q should name the limit and suggest batch or NDJSON", fs.Error)
	}
	if fs.Total() != 0 {
		t.Errorf("counts %+v, want nothing imported", fs.Counts)
	}
}

// TestChunkRetry: a chunk whose store transaction fails (here: a write the
// store refuses, which validation cannot see) is written again entry by
// entry, so only the bad entry fails.
func TestChunkRetry(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { testChunkRetry(t, backend) })
	}
}

func testChunkRetry(t *testing.T, backend string) {
	im, st := newImporterOn(t, backend, importer.Options{ChunkSize: 10})
	ctx := context.Background()
	// A batch PUT with If-Match on a version that is not current fails in
	// the store transaction, not before.
	var entries []string
	for i := 0; i < 5; i++ {
		entries = append(entries, `{"resource":`+patient(fmt.Sprintf("r%d", i), "Retry")+`,"request":{"method":"PUT","url":"Patient/r`+fmt.Sprint(i)+`"}}`)
	}
	entries[2] = `{"resource":` + patient("r2", "Retry") + `,"request":{"method":"PUT","url":"Patient/r2","ifMatch":"W/\"7\""}}`
	fs := im.ImportFile(ctx, write(t, "retry.json", bundle("batch", entries...)))
	if d := cmp.Diff(importer.Counts{Created: 4, Failed: 1}, counts(fs)); d != "" {
		t.Errorf("counts (-want +got):\n%s\n%+v", d, fs.Failures)
	}
	if len(fs.Failures) != 1 || *fs.Failures[0].Entry != 2 || fs.Failures[0].Resource != "Patient/r2" {
		t.Errorf("failures: %+v", fs.Failures)
	}
	for _, id := range []string{"r0", "r1", "r3", "r4"} {
		read(t, st, "Patient", id)
	}
}

func TestFileErrors(t *testing.T) {
	im, _ := newImporter(t, importer.Options{})
	ctx := context.Background()
	cases := []struct {
		name, content, want string
	}{
		{"empty.json", "  \n", "empty"},
		{"list.json", "[1,2]", "neither a JSON object"},
		{"doc.json", `{"resourceType":"Bundle","type":"document","entry":[]}`, "type document cannot be imported"},
		{"notype.json", `{"resourceType":"Bundle","entry":[]}`, "no type"},
		{"cut.json", `{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Pat`, "cut short"},
		{"two.json", `{"resourceType":"Bundle","type":"collection","entry":[]} {"a":1}`, "more JSON follows"},
	}
	for _, c := range cases {
		fs := im.ImportFile(ctx, write(t, c.name, c.content))
		if !strings.Contains(fs.Error, c.want) {
			t.Errorf("%s: error %q, want it to contain %q", c.name, fs.Error, c.want)
		}
	}
	fs := im.ImportFile(ctx, filepath.Join(t.TempDir(), "missing.ndjson"))
	if fs.Error == "" {
		t.Error("a missing file gave no error")
	}
}

// TestTypeAfterEntry: JSON allows the Bundle's type after its entries; the
// file is then read twice (once for the type) and imported as usual.
func TestTypeAfterEntry(t *testing.T) {
	im, _ := newImporter(t, importer.Options{})
	content := `{"entry":[{"resource":` + patient("late1", "Late") + `}],"type":"collection","resourceType":"Bundle"}`
	fs := im.ImportFile(context.Background(), write(t, "late.json", content))
	if fs.Error != "" || fs.Created != 1 || fs.Format != "bundle/collection" {
		t.Errorf("%+v", fs)
	}
}

// TestDetect: NDJSON without the extension is recognised by content.
func TestDetect(t *testing.T) {
	im, _ := newImporter(t, importer.Options{})
	fs := im.ImportFile(context.Background(), write(t, "export.txt", patient("d1", "A")+"\n"+patient("d2", "B")+"\n"))
	if fs.Format != "ndjson" || fs.Created != 2 {
		t.Errorf("%+v", fs)
	}
	fs = im.ImportFile(context.Background(), write(t, "export.json", patient("d4", "C")+"\n"+patient("d5", "D")))
	if fs.Format != "ndjson" || fs.Created != 2 {
		t.Errorf("NDJSON named .json: %+v", fs)
	}
	fs = im.ImportFile(context.Background(), write(t, "one.txt", "{\n \"resourceType\": \"Patient\",\n \"id\": \"d3\"\n}\n"))
	if fs.Format != "resource" || fs.Created != 1 {
		t.Errorf("%+v", fs)
	}
}

func TestFailureLogAndCap(t *testing.T) {
	var log strings.Builder
	im, _ := newImporter(t, importer.Options{MaxFailures: 2, FailureLog: &log})
	var lines []string
	for range 5 {
		lines = append(lines, `{"resourceType":"Patient","birthDate":"x"}`)
	}
	fs := im.ImportFile(context.Background(), write(t, "bad.ndjson", strings.Join(lines, "\n")))
	if fs.Failed != 5 || len(fs.Failures) != 2 || fs.FailuresOmitted != 3 {
		t.Errorf("failed %d, listed %d, omitted %d; want 5, 2, 3", fs.Failed, len(fs.Failures), fs.FailuresOmitted)
	}
	var got []int
	sc := bufio.NewScanner(strings.NewReader(log.String()))
	for sc.Scan() {
		var f importer.Failure
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatal(err)
		}
		got = append(got, f.Line)
	}
	if d := cmp.Diff([]int{1, 2, 3, 4, 5}, got); d != "" {
		t.Errorf("failure log lines (-want +got):\n%s", d)
	}
}

func TestImportSummary(t *testing.T) {
	im, _ := newImporter(t, importer.Options{})
	a := write(t, "a.ndjson", patient("s1", "A"))
	b := write(t, "b.ndjson", `{"resourceType":"Patient","birthDate":"x"}`)
	s := im.Import(context.Background(), []string{a, b})
	if d := cmp.Diff(importer.Counts{Created: 1, Failed: 1}, s.Counts, cmpopts.IgnoreFields(importer.Counts{})); d != "" {
		t.Errorf("totals (-want +got):\n%s", d)
	}
	if s.OK() || len(s.Files) != 2 {
		t.Errorf("OK %v with %d files", s.OK(), len(s.Files))
	}
}

// TestImportIntoEmptyStore: an import into an empty SQLite store builds
// the search indexes once, before its first batch Bundle (whose
// conditional entries search) or at the end; one into a store with
// resources keeps them in place.
func TestImportIntoEmptyStore(t *testing.T) {
	im, st := newImporter(t, importer.Options{})
	ctx := context.Background()
	nd := write(t, "p.ndjson", patient("e1", "Empty")+"\n"+patient("e2", "Other")+"\n"+observation("eo1", "Patient/e1")+"\n")
	batch := write(t, "b.json", bundle("batch",
		`{"resource":`+patient("", "Empty")+`,"request":{"method":"POST","url":"Patient","ifNoneExist":"family=Empty"}}`))
	s := im.Import(ctx, []string{nd, batch})
	if d := cmp.Diff(importer.Counts{Created: 3, Unchanged: 1}, s.Counts); d != "" {
		t.Errorf("counts (-want +got):\n%s\n%+v", d, s.Files)
	}
	if !s.OK() || s.IndexSeconds <= 0 || s.IndexError != "" {
		t.Errorf("import into an empty store: OK %v, index build %.3f s, error %q; want the indexes built", s.OK(), s.IndexSeconds, s.IndexError)
	}
	if left, err := st.DeferredIndexes(ctx); err != nil || len(left) != 0 {
		t.Errorf("indexes left unbuilt: %v, %v", left, err)
	}
	res, err := st.Search(ctx, store.Query{Type: "Observation", Where: store.InCompartment{Patients: []string{"e1"}}, Page: store.Page{Count: 10}})
	if err != nil || len(res.Resources) != 1 {
		t.Errorf("e1's compartment after the import: %d resources, %v; want 1", len(res.Resources), err)
	}
	s = im.Import(ctx, []string{nd})
	if s.Unchanged != 3 || s.IndexSeconds != 0 {
		t.Errorf("import into a store with resources: %+v, index build %.3f s; want 3 unchanged and no build", s.Counts, s.IndexSeconds)
	}
}
