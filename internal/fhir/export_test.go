package fhir_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"smartgate/internal/fhir"
	"smartgate/internal/store"
	"smartgate/internal/token"
)

// apiBase is the FHIR base the fixture's API names in its URLs.
const apiBase = issuer + "/fhir"

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/")

// withExports turns Bulk Data export on, on the fixture's own store.
func withExports(maxLines int) func(*fhir.Deps) {
	return func(d *fhir.Deps) {
		d.Exports = d.Store.(store.Exports)
		d.ExportOpts = fhir.ExportOptions{Retention: time.Hour, MaxFileLines: maxLines, MaxActivePerApp: 3}
	}
}

// runExporter runs the background exporter of the fixture's API.
func (f *fixture) runExporter() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.api.RunExporter(ctx, "test-node"); close(done) }()
	f.t.Cleanup(func() { cancel(); <-done })
}

// clientToken mints a backend-services token for client.
func (f *fixture) clientToken(client, scope string) string {
	f.t.Helper()
	tok, err := f.tokens.Issue(token.Claims{Subject: client, ClientID: client, Scope: scope, Expiry: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// kickoff starts an export and returns the status path (below /fhir).
func (f *fixture) kickoff(t *testing.T, tok, path string) string {
	t.Helper()
	r := f.do(http.MethodGet, path, tok, nil, "Prefer", "respond-async", "Accept", "application/fhir+json")
	if r.status != http.StatusAccepted {
		t.Fatalf("kick-off %s: %d %s", path, r.status, r.body)
	}
	loc := r.header.Get("Content-Location")
	if !strings.HasPrefix(loc, apiBase+"/$export-status/") {
		t.Fatalf("kick-off %s: Content-Location %q", path, loc)
	}
	return strings.TrimPrefix(loc, apiBase)
}

type manifest struct {
	TransactionTime     string `json:"transactionTime"`
	Request             string `json:"request"`
	RequiresAccessToken bool   `json:"requiresAccessToken"`
	Output              []struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int    `json:"count"`
	} `json:"output"`
	Error []any `json:"error"`
}

// finished polls the status until the job completes and returns the
// manifest and its raw body.
func (f *fixture) finished(t *testing.T, tok, status string) (manifest, []byte) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := f.do(http.MethodGet, status, tok, nil)
		switch r.status {
		case http.StatusOK:
			var m manifest
			if err := json.Unmarshal(r.body, &m); err != nil {
				t.Fatalf("manifest: %v\n%s", err, r.body)
			}
			return m, r.body
		case http.StatusAccepted:
			if r.header.Get("X-Progress") == "" || r.header.Get("Retry-After") == "" {
				t.Errorf("202 status without X-Progress or Retry-After: %v", r.header)
			}
		default:
			t.Fatalf("status %s: %d %s", status, r.status, r.body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("export %s did not finish within 60 s", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// download reads one output file and returns its resources by line.
func (f *fixture) download(t *testing.T, tok, fileURL string) []map[string]any {
	t.Helper()
	r := f.do(http.MethodGet, strings.TrimPrefix(fileURL, apiBase), tok, nil, "Accept", "application/fhir+ndjson")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/fhir+ndjson" {
		t.Fatalf("file %s: %d %q %s", fileURL, r.status, r.header.Get("Content-Type"), r.body)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("file %s: a line is not JSON: %v: %.200s", fileURL, err, sc.Bytes())
		}
		out = append(out, m)
	}
	return out
}

// searchAll returns every "Type/id" a system search of typ finds.
func (f *fixture) searchAll(t *testing.T, tok, typ, query string) []string {
	t.Helper()
	var out []string
	path := "/" + typ + "?_count=1000"
	if query != "" {
		path += "&" + query
	}
	for path != "" {
		r := f.do(http.MethodGet, path, tok, nil)
		if r.status != 200 {
			t.Fatalf("search %s: %d %s", path, r.status, r.body)
		}
		out = append(out, r.ids("match")...)
		path = ""
		links, _ := r.json["link"].([]any)
		for _, l := range links {
			lm := l.(map[string]any)
			if lm["relation"] == "next" {
				path = strings.TrimPrefix(strings.TrimPrefix(lm["url"].(string), f.base), apiBase)
			}
		}
	}
	slices.Sort(out)
	return out
}

func exported(t *testing.T, f *fixture, tok string, m manifest, typ string) []string {
	t.Helper()
	var out []string
	for _, o := range m.Output {
		if o.Type != typ {
			continue
		}
		lines := f.download(t, tok, o.URL)
		if len(lines) != o.Count {
			t.Errorf("%s: manifest count %d, file has %d lines", o.URL, o.Count, len(lines))
		}
		for _, l := range lines {
			if l["resourceType"] != typ {
				t.Errorf("%s: a %v line in a %s file", o.URL, l["resourceType"], typ)
			}
			out = append(out, typ+"/"+l["id"].(string))
		}
	}
	slices.Sort(out)
	return out
}

var (
	volatileTime = regexp.MustCompile(`"transactionTime": "[^"]+"`)
	volatileJob  = regexp.MustCompile(`\$export-(status|file)/[A-Za-z0-9_-]+`)
)

// golden compares got with testdata/name after masking what changes
// from run to run (the transaction time and the job id).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		pretty.Write(got)
	}
	masked := volatileTime.ReplaceAllString(pretty.String(), `"transactionTime": "<time>"`)
	masked = strings.TrimSpace(volatileJob.ReplaceAllString(masked, "$$export-$1/<job>"))
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(masked+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/fhir -run Export -update)", err)
	}
	if d := cmp.Diff(strings.TrimSpace(string(want)), strings.TrimSpace(masked)); d != "" {
		t.Errorf("%s differs from the golden file (-want +got):\n%s", name, d)
	}
}

func TestExportSystemLevel(t *testing.T) {
	f := newFixture(t, "sqlite", withExports(0))
	tok := f.clientToken("lab", "system/*.rs")
	status := f.kickoff(t, tok, "/$export?_type=Patient,Observation,Practitioner&_typeFilter=Observation%3Fcategory%3Dlaboratory")

	// Before any node runs it: accepted, 202 with progress.
	r := f.do(http.MethodGet, status, tok, nil)
	if r.status != http.StatusAccepted || r.header.Get("X-Progress") != "waiting to start" || r.header.Get("Retry-After") != "2" {
		t.Fatalf("status of a waiting job: %d %v", r.status, r.header)
	}
	golden(t, "export-status-accepted.txt", []byte(`{"status":`+itoa(r.status)+`,"X-Progress":"`+r.header.Get("X-Progress")+`","Retry-After":"`+r.header.Get("Retry-After")+`","body":"`+string(r.body)+`"}`))

	f.runExporter()
	m, body := f.finished(t, tok, status)
	golden(t, "export-manifest-system.json", body)
	if !m.RequiresAccessToken || m.Error == nil || !strings.HasSuffix(m.Request, "/$export?_type=Patient,Observation,Practitioner&_typeFilter=Observation%3Fcategory%3Dlaboratory") {
		t.Errorf("manifest %+v", m)
	}
	if tt, err := time.Parse(time.RFC3339Nano, m.TransactionTime); err != nil || time.Since(tt) > time.Minute {
		t.Errorf("transactionTime %q", m.TransactionTime)
	}
	for typ, query := range map[string]string{"Patient": "", "Practitioner": "", "Observation": "category=laboratory"} {
		want := f.searchAll(t, tok, typ, query)
		if got := exported(t, f, tok, m, typ); !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("%s: exported %d resources, the API finds %d:\n%s", typ, len(got), len(want), cmp.Diff(want, got))
		}
	}

	// Every line is the resource as the API serves it.
	for _, o := range m.Output[:1] {
		for _, line := range f.download(t, tok, o.URL) {
			r := f.do(http.MethodGet, "/"+o.Type+"/"+line["id"].(string), tok, nil)
			var served map[string]any
			_ = json.Unmarshal(r.body, &served)
			if d := cmp.Diff(served, line); d != "" {
				t.Errorf("exported %s/%s differs from a read:\n%s", o.Type, line["id"], d)
			}
		}
	}

	// Another client sees nothing of it.
	other := f.clientToken("other", "system/*.rs")
	for _, path := range []string{status, strings.TrimPrefix(m.Output[0].URL, apiBase)} {
		if r := f.do(http.MethodGet, path, other, nil); r.status != http.StatusNotFound {
			t.Errorf("another client GET %s: %d, want 404", path, r.status)
		}
	}
	if r := f.do(http.MethodDelete, status, other, nil); r.status != http.StatusNotFound {
		t.Errorf("another client DELETE: %d, want 404", r.status)
	}
	if r := f.do(http.MethodGet, strings.TrimPrefix(m.Output[0].URL, apiBase), "", nil); r.status != http.StatusUnauthorized {
		t.Errorf("file without a token: %d, want 401 (requiresAccessToken)", r.status)
	}
	// The owner deletes it: 202, then 404 for status and files.
	if r := f.do(http.MethodDelete, status, tok, nil); r.status != http.StatusAccepted {
		t.Errorf("DELETE: %d %s, want 202", r.status, r.body)
	}
	for _, path := range []string{status, strings.TrimPrefix(m.Output[0].URL, apiBase)} {
		if r := f.do(http.MethodGet, path, tok, nil); r.status != http.StatusNotFound {
			t.Errorf("after DELETE, GET %s: %d, want 404", path, r.status)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestExportPatientAndGroupLevel(t *testing.T) {
	backends(t, testExportPatientAndGroupLevel)
}

func testExportPatientAndGroupLevel(t *testing.T, backend string) {
	f := newFixture(t, backend, withExports(5))
	f.runExporter()
	tok := f.clientToken("lab", "system/*.rs system/Group.cruds")

	// Patient level: patient data of every patient, no patient-free types.
	m, _ := f.finished(t, tok, f.kickoff(t, tok, "/Patient/$export"))
	types := map[string]int{}
	for _, o := range m.Output {
		types[o.Type] += o.Count
		if o.Count > 5 {
			t.Errorf("%s has %d lines, more than export.max_file_resources 5", o.URL, o.Count)
		}
	}
	for _, free := range fhir.PatientFreeTypes() {
		if types[free] > 0 {
			t.Errorf("a patient-level export holds %d %s resources (no patient data)", types[free], free)
		}
	}
	for _, typ := range []string{"Patient", "Observation", "Condition", "Encounter"} {
		if want := len(f.searchAll(t, tok, typ, "")); types[typ] != want {
			t.Errorf("patient-level export: %d %s, the API has %d", types[typ], typ, want)
		}
	}

	// Group level: only the members' data.
	group := `{"resourceType":"Group","id":"cohort","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/pat-amy-shaw"}},{"entity":{"reference":"Patient/pat-lily-chen"}},{"entity":{"reference":"Patient/pat-walter-obrien"},"inactive":true}]}`
	if r := f.do(http.MethodPut, "/Group/cohort", tok, group); r.status >= 300 {
		t.Fatalf("PUT Group: %d %s", r.status, r.body)
	}
	m, body := f.finished(t, tok, f.kickoff(t, tok, "/Group/cohort/$export?_type=Patient,Observation"))
	golden(t, "export-manifest-group.json", body)
	if got := exported(t, f, tok, m, "Patient"); !slices.Equal(got, []string{"Patient/pat-amy-shaw", "Patient/pat-lily-chen"}) {
		t.Errorf("group export patients: %v", got)
	}
	want := append(f.searchAll(t, tok, "Observation", "patient=pat-amy-shaw"), f.searchAll(t, tok, "Observation", "patient=pat-lily-chen")...)
	slices.Sort(want)
	if got := exported(t, f, tok, m, "Observation"); !slices.Equal(got, want) {
		t.Errorf("group export observations: %d, want the members' %d", len(got), len(want))
	}
	if r := f.do(http.MethodGet, "/Group/nope/$export", tok, nil, "Prefer", "respond-async"); r.status != http.StatusNotFound {
		t.Errorf("export of an unknown Group: %d, want 404", r.status)
	}
}

func TestExportSince(t *testing.T) {
	f := newFixture(t, "sqlite", withExports(0))
	f.runExporter()
	tok := f.clientToken("lab", "system/*.cruds")
	time.Sleep(10 * time.Millisecond)
	since := time.Now().UTC().Format(time.RFC3339Nano)
	time.Sleep(10 * time.Millisecond)
	obs := `{"resourceType":"Observation","id":"new-obs","status":"final","code":{"text":"new"},"subject":{"reference":"Patient/pat-amy-shaw"}}`
	if r := f.do(http.MethodPut, "/Observation/new-obs", tok, obs); r.status >= 300 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	m, _ := f.finished(t, tok, f.kickoff(t, tok, "/$export?_since="+since))
	if len(m.Output) != 1 || m.Output[0].Type != "Observation" || m.Output[0].Count != 1 {
		t.Fatalf("_since export: %+v, want just the new Observation", m.Output)
	}
}

func TestExportKickoffRefusals(t *testing.T) {
	f := newFixture(t, "sqlite", withExports(0))
	sys := f.clientToken("lab", "system/*.rs")
	for _, tc := range []struct {
		name, path, tok, prefer string
		status                  int
		want                    string
	}{
		{"no Prefer", "/$export", sys, "", 400, "Prefer: respond-async"},
		{"output format", "/$export?_outputFormat=text/csv", sys, "respond-async", 400, "_outputFormat"},
		{"since", "/$export?_since=yesterday", sys, "respond-async", 400, "_since"},
		{"unknown type", "/$export?_type=Nope", sys, "respond-async", 400, `Nope`},
		{"patient-free type at patient level", "/Patient/$export?_type=Practitioner", sys, "respond-async", 400, "holds no patient data"},
		{"filter outside _type", "/$export?_type=Patient&_typeFilter=Observation%3Fcode%3D1", sys, "respond-async", 400, "does not include"},
		{"filter parameter", "/$export?_typeFilter=Observation%3Fnope%3D1", sys, "respond-async", 400, "nope"},
		{"filter control parameter", "/$export?_typeFilter=Observation%3F_count%3D1", sys, "respond-async", 400, "_count"},
		{"unsupported parameter", "/$export?includeAssociatedData=LatestProvenanceResources", sys, "respond-async", 400, "includeAssociatedData"},
		{"user token", "/$export", f.token("patient/*.rs launch/patient", "pat-amy-shaw", ""), "respond-async", 403, "system/"},
		{"type outside scopes", "/$export?_type=Observation", f.clientToken("lab", "system/Patient.rs"), "respond-async", 403, "Observation"},
		{"no token", "/$export", "", "respond-async", 401, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := []string{"Accept", "application/fhir+json"}
			if tc.prefer != "" {
				h = append(h, "Prefer", tc.prefer)
			}
			r := f.do(http.MethodGet, tc.path, tc.tok, nil, h...)
			if r.status != tc.status || !strings.Contains(string(r.body), tc.want) {
				t.Errorf("%d %s; want %d naming %q", r.status, r.body, tc.status, tc.want)
			}
			if r.status < 300 {
				t.Errorf("a refused kick-off made a job")
			}
		})
	}
	// handling=lenient ignores what is not supported.
	if r := f.do(http.MethodGet, "/$export?includeAssociatedData=x", sys, nil, "Prefer", "respond-async, handling=lenient"); r.status != http.StatusAccepted {
		t.Errorf("lenient kick-off: %d %s", r.status, r.body)
	}
	// At most MaxActivePerApp (3) waiting or running jobs per client.
	for range 2 {
		f.kickoff(t, sys, "/$export?_type=Patient")
	}
	if r := f.do(http.MethodGet, "/$export", sys, nil, "Prefer", "respond-async"); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Errorf("fourth active export: %d %v, want 429 with Retry-After", r.status, r.header)
	}
}
