package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// importSummary is what `smartgate import -o json` prints.
type importSummary struct {
	Files []struct {
		File     string `json:"file"`
		Format   string `json:"format"`
		Created  int    `json:"created"`
		Updated  int    `json:"updated"`
		Unch     int    `json:"unchanged"`
		Failed   int    `json:"failed"`
		NewIDs   int    `json:"new_ids"`
		Error    string `json:"error"`
		Failures []struct {
			Line     int    `json:"line"`
			Entry    *int   `json:"entry"`
			Resource string `json:"resource"`
			Reason   string `json:"reason"`
		} `json:"failures"`
	} `json:"files"`
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Failed    int `json:"failed"`
}

// TestImportThenRead runs the real `smartgate import` against the data dir
// of a running `serve --dev`: an NDJSON file (with one invalid line) and a
// transaction Bundle with urn:uuid references. Then a SMART Backend
// Services client reads what was imported through the FHIR API, and a
// second import of the same NDJSON file changes nothing.
func TestImportThenRead(t *testing.T) {
	t.Parallel()
	s := startDev(t)
	dir := t.TempDir()
	ndjson := filepath.Join(dir, "data.ndjson")
	lines := []string{
		`{"resourceType":"Patient","id":"imp-p1","name":[{"family":"Imported","given":["Ida"]}],"gender":"female","birthDate":"1980-02-03"}`,
		`{"resourceType":"Observation","id":"imp-o1","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/imp-p1"},"effectiveDateTime":"2024-05-01T10:00:00Z","valueQuantity":{"value":61,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`,
		`{"resourceType":"Observation","id":"imp-bad","status":"final","subject":{"reference":"Patient/imp-p1"}}`,
	}
	if err := os.WriteFile(ndjson, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	txb := filepath.Join(dir, "transaction.json")
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
	 {"fullUrl":"urn:uuid:0c3f8d2a-1111-4a5b-9c3d-000000000001","resource":{"resourceType":"Patient","name":[{"family":"Transacted"}]},"request":{"method":"POST","url":"Patient"}},
	 {"resource":{"resourceType":"Condition","id":"imp-c1","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},"code":{"text":"Asthma"},"subject":{"reference":"urn:uuid:0c3f8d2a-1111-4a5b-9c3d-000000000001"}},"request":{"method":"PUT","url":"Condition/imp-c1"}}
	]}`
	if err := os.WriteFile(txb, []byte(tx), 0o600); err != nil {
		t.Fatal(err)
	}

	// One invalid line: exit 1, the summary names the line and the reason.
	r := smartgate(t, s.env, "import", ndjson, txb, "--dev", "--data-dir", s.dataDir, "--output", "json")
	if r.code != 1 {
		t.Fatalf("import with one invalid line: want exit 1; got %s", r)
	}
	var sum importSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("import -o json printed no summary (%v): %s", err, r)
	}
	if sum.Created != 4 || sum.Failed != 1 || len(sum.Files) != 2 {
		t.Fatalf("summary: created %d failed %d files %d; want 4, 1, 2\n%s", sum.Created, sum.Failed, len(sum.Files), r.stdout)
	}
	nd := sum.Files[0]
	if nd.Format != "ndjson" || len(nd.Failures) != 1 || nd.Failures[0].Line != 3 || nd.Failures[0].Resource != "Observation/imp-bad" || !strings.Contains(nd.Failures[0].Reason, "Observation.code") {
		t.Errorf("NDJSON file summary: %+v", nd)
	}
	if f := sum.Files[1]; f.Format != "bundle/transaction" || f.Created != 2 || f.NewIDs != 1 {
		t.Errorf("transaction file summary: %+v", f)
	}
	if !strings.Contains(r.stderr, "1 entry failed") {
		t.Errorf("stderr should say an entry failed: %s", r.stderr)
	}

	// Read through the FHIR API with a system/*.rs backend token.
	key := newRSAKey(t, "import-reader", jose.RS384)
	c := s.createClient(t, "import reader", "--type", "confidential-asymmetric", "--jwks-file", writeJWKSFile(t, key), "--scope", "system/*.rs")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := &clientcredentials.Config{
		ClientID: c.ClientID, TokenURL: s.tokenURL(), Scopes: []string{"system/*.rs"}, AuthStyle: oauth2.AuthStyleInParams,
		EndpointParams: url.Values{
			"client_assertion_type": {assertionType},
			"client_assertion":      {key.sign(t, assertionClaims(c.ClientID, s.tokenURL()), nil)},
		},
	}
	tok, err := cfg.Token(ctx)
	if err != nil {
		t.Fatalf("client_credentials: %v", err)
	}
	fhirc := oauth2.NewClient(ctx, oauth2.StaticTokenSource(tok))
	fhirc.Timeout = 10 * time.Second
	get := func(path string) (int, map[string]any) {
		t.Helper()
		resp, err := fhirc.Get(s.URL + "/fhir" + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	versionOf := func(m map[string]any) string {
		meta, _ := m["meta"].(map[string]any)
		v, _ := meta["versionId"].(string)
		return v
	}

	status, p := get("/Patient/imp-p1")
	if status != http.StatusOK || versionOf(p) != "1" {
		t.Fatalf("GET Patient/imp-p1: %d version %q: %v", status, versionOf(p), p)
	}
	status, b := get("/Observation?patient=imp-p1&code=http://loinc.org|8867-4")
	if es, _ := b["entry"].([]any); status != http.StatusOK || len(es) != 1 {
		t.Errorf("Observation?patient=imp-p1&code=...: %d, %d entries; want the imported Observation (indexed)", status, len(es))
	}
	if status, _ := get("/Observation/imp-bad"); status != http.StatusNotFound {
		t.Errorf("GET Observation/imp-bad (the invalid line): %d, want 404", status)
	}
	status, cond := get("/Condition/imp-c1")
	subject, _ := cond["subject"].(map[string]any)
	ref, _ := subject["reference"].(string)
	if status != http.StatusOK || !strings.HasPrefix(ref, "Patient/") {
		t.Fatalf("GET Condition/imp-c1: %d, subject %q; want the urn:uuid resolved to Patient/<id>", status, ref)
	}
	if status, pt := get("/" + ref); status != http.StatusOK || pt["id"] != strings.TrimPrefix(ref, "Patient/") {
		t.Errorf("GET %s (created by the transaction): %d", ref, status)
	}
	// The Condition is in its patient's compartment: the search by
	// patient finds it.
	status, b = get("/Condition?patient=" + strings.TrimPrefix(ref, "Patient/"))
	if es, _ := b["entry"].([]any); status != http.StatusOK || len(es) != 1 {
		t.Errorf("Condition?patient=%s: %d, %d entries; want 1", strings.TrimPrefix(ref, "Patient/"), status, len(es))
	}

	// Importing the NDJSON again changes nothing: no new versions.
	r = smartgate(t, s.env, "import", ndjson, "--dev", "--data-dir", s.dataDir, "--output", "json")
	sum = importSummary{}
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("second import printed no summary: %s", r)
	}
	if sum.Unchanged != 2 || sum.Created != 0 || sum.Updated != 0 || sum.Failed != 1 {
		t.Errorf("second import: unchanged %d created %d updated %d failed %d; want 2, 0, 0, 1", sum.Unchanged, sum.Created, sum.Updated, sum.Failed)
	}
	if _, p := get("/Patient/imp-p1"); versionOf(p) != "1" {
		t.Errorf("Patient/imp-p1 version %q after a second import, want 1", versionOf(p))
	}
}
