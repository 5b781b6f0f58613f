package e2e

import (
	"bufio"
	"bytes"
	"crypto"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

// backendToken gets a client_credentials token with a private_key_jwt
// assertion signed by key.
func backendToken(t *testing.T, base, clientID string, key *assertKey, scope string) string {
	t.Helper()
	tokenURL := base + "/oauth2/token"
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
		"client_assertion_type": {assertionType}, "client_assertion": {key.sign(t, assertionClaims(clientID, tokenURL), nil)}}
	r := do(t, http.MethodPost, tokenURL, strings.NewReader(form.Encode()), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if r.status != 200 {
		t.Fatalf("backend token for %s: %s", clientID, r)
	}
	r.json(t, &tr)
	return tr.AccessToken
}

func bearer(tok string, more ...string) http.Header {
	h := http.Header{"Authorization": {"Bearer " + tok}}
	for i := 0; i+1 < len(more); i += 2 {
		h.Set(more[i], more[i+1])
	}
	return h
}

type bulkManifest struct {
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

// bulkExport kicks off an export at kickBase and polls its status at
// pollBase (another node may answer), returning the manifest.
func bulkExport(t *testing.T, kickBase, pollBase, tok, path string) (bulkManifest, string) {
	t.Helper()
	r := do(t, http.MethodGet, kickBase+"/fhir"+path, nil, bearer(tok, "Prefer", "respond-async", "Accept", "application/fhir+json"))
	if r.status != http.StatusAccepted {
		t.Fatalf("kick-off %s: %s", path, r)
	}
	status := r.header.Get("Content-Location")
	if !strings.HasPrefix(status, kickBase+"/fhir/$export-status/") {
		t.Fatalf("kick-off Content-Location %q", status)
	}
	status = pollBase + strings.TrimPrefix(status, kickBase)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r := do(t, http.MethodGet, status, nil, bearer(tok))
		switch r.status {
		case http.StatusOK:
			var m bulkManifest
			r.json(t, &m)
			return m, status
		case http.StatusAccepted:
			if r.header.Get("Retry-After") == "" || r.header.Get("X-Progress") == "" {
				t.Errorf("in-progress status without Retry-After or X-Progress: %v", r.header)
			}
		default:
			t.Fatalf("export status: %s", r)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the export did not finish in 2 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkExport downloads every file (from fileBase, which may be another
// node) and checks each line against a read of the same resource at
// readBase: the export holds exactly what the API serves.
func checkExport(t *testing.T, m bulkManifest, urlBase, fileBase, readBase, tok string) map[string]int {
	t.Helper()
	if !m.RequiresAccessToken || m.Error == nil || len(m.Output) == 0 {
		t.Fatalf("manifest %+v", m)
	}
	counts := map[string]int{}
	for _, o := range m.Output {
		u := fileBase + strings.TrimPrefix(o.URL, urlBase)
		r := do(t, http.MethodGet, u, nil, bearer(tok, "Accept", "application/fhir+ndjson"))
		if r.status != 200 || r.header.Get("Content-Type") != "application/fhir+ndjson" {
			t.Fatalf("file %s: %s", u, r)
		}
		sc := bufio.NewScanner(bytes.NewReader(r.body))
		sc.Buffer(nil, 16<<20)
		n := 0
		for sc.Scan() {
			n++
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("%s line %d is not JSON: %v", u, n, err)
			}
			if line["resourceType"] != o.Type {
				t.Errorf("%s line %d is a %v in a %s file", u, n, line["resourceType"], o.Type)
			}
			read := do(t, http.MethodGet, readBase+"/fhir/"+o.Type+"/"+line["id"].(string), nil, bearer(tok))
			var served map[string]any
			read.json(t, &served)
			if d := cmp.Diff(served, line); d != "" {
				t.Errorf("%s/%v exported differs from a read:\n%s", o.Type, line["id"], d)
			}
		}
		if n != o.Count {
			t.Errorf("%s: manifest count %d, %d lines", u, o.Count, n)
		}
		counts[o.Type] += n
	}
	return counts
}

// searchTotal counts a type's resources through the API.
func searchTotal(t *testing.T, base, tok, typ string) int {
	t.Helper()
	r := do(t, http.MethodGet, base+"/fhir/"+typ+"?_summary=count", nil, bearer(tok))
	var b struct {
		Total int `json:"total"`
	}
	r.json(t, &b)
	return b.Total
}

// TestBulkExportDemoBackend exports the demo data with the demo backend
// service of dev-clients.json (its private key is in the file) and checks
// every line against the API, and that another client sees nothing.
func TestBulkExportDemoBackend(t *testing.T) {
	t.Parallel()
	s := startDev(t)
	var dcs []struct {
		ClientID   string          `json:"client_id"`
		PrivateJWK json.RawMessage `json:"private_jwk"`
	}
	b, err := os.ReadFile(filepath.Join(s.dataDir, "dev-clients.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dcs); err != nil {
		t.Fatal(err)
	}
	var key *assertKey
	for _, dc := range dcs {
		if dc.ClientID == "demo-backend" {
			var jwk jose.JSONWebKey
			if err := jwk.UnmarshalJSON(dc.PrivateJWK); err != nil {
				t.Fatalf("demo-backend private_jwk: %v", err)
			}
			key = &assertKey{kid: jwk.KeyID, alg: jose.SignatureAlgorithm(jwk.Algorithm), priv: jwk.Key.(crypto.Signer)}
		}
	}
	if key == nil {
		t.Fatal("dev-clients.json has no demo-backend")
	}
	tok := backendToken(t, s.URL, "demo-backend", key, "system/*.rs")
	m, status := bulkExport(t, s.URL, s.URL, tok, "/$export")
	counts := checkExport(t, m, s.URL, s.URL, s.URL, tok)
	for _, typ := range []string{"Patient", "Observation", "Encounter", "Practitioner"} {
		if want := searchTotal(t, s.URL, tok, typ); counts[typ] != want || want == 0 {
			t.Errorf("%s: %d exported, the API counts %d", typ, counts[typ], want)
		}
	}

	// A second backend client gets 404 for the first one's job and files.
	other := newRSAKey(t, "other-1", jose.RS384)
	oc := s.createClient(t, "other backend", "--type", "confidential-asymmetric", "--jwks-file", writeJWKSFile(t, other), "--scope", "system/*.rs")
	otok := backendToken(t, s.URL, oc.ClientID, other, "system/*.rs")
	for _, u := range []string{status, m.Output[0].URL} {
		if r := do(t, http.MethodGet, u, nil, bearer(otok)); r.status != http.StatusNotFound {
			t.Errorf("another client GET %s: %s, want 404", u, r)
		}
	}
	if r := do(t, http.MethodDelete, status, nil, bearer(otok)); r.status != http.StatusNotFound {
		t.Errorf("another client DELETE: %s, want 404", r)
	}
	// The CapabilityStatement declares Bulk Data.
	r := do(t, http.MethodGet, s.URL+"/fhir/metadata", nil, nil)
	if !strings.Contains(string(r.body), "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data") ||
		!strings.Contains(string(r.body), "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export") {
		t.Errorf("metadata does not instantiate Bulk Data or declare group-export")
	}
}

// TestBulkExportTwoNodesOnPostgres: two nodes behind one issuer on one
// PostgreSQL database (as production runs them; see
// TestTwoNodesShareOAuthState for why not dev mode). Node A accepts the
// kick-off, the job runs on whichever node claims it, and node B serves
// the status and the files.
func TestBulkExportTwoNodesOnPostgres(t *testing.T) {
	t.Parallel()
	dsn := newPostgresDatabase(t)
	env := baseEnv("SMARTGATE_KEK=" + newKEK(t))
	portA, portB := freeLoopbackPort(t), freeLoopbackPort(t)
	for portB == portA {
		portB = freeLoopbackPort(t)
	}
	issuer := "http://127.0.0.1:" + strconv.Itoa(portA)
	node := func(name string, port int) string {
		p := start(t, env, "serve", "--issuer", issuer, "--listen", "127.0.0.1:"+strconv.Itoa(port), "--data-dir", filepath.Join(t.TempDir(), name), "--database", dsn)
		waitReady(t, p)
		return "http://127.0.0.1:" + strconv.Itoa(port)
	}
	a, b := node("a", portA), node("b", portB)
	key := newRSAKey(t, "pg-bulk-1", jose.RS384)
	r := mustRun(t, env, "client", "create", "--name", "pg bulk", "--type", "confidential-asymmetric", "--jwks-file", writeJWKSFile(t, key),
		"--scope", "system/*.cruds", "--data-dir", t.TempDir(), "--database", dsn, "--output", "json")
	var c cliClient
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil || c.ClientID == "" {
		t.Fatalf("client create: %v %s", err, r)
	}
	tok := backendToken(t, a, c.ClientID, key, "system/*.cruds")
	// Some data (not dev mode: no demo data).
	for i, body := range []string{
		`{"resourceType":"Patient","id":"bulk-p1","name":[{"family":"One"}],"gender":"female"}`,
		`{"resourceType":"Patient","id":"bulk-p2","name":[{"family":"Two"}],"gender":"male"}`,
		`{"resourceType":"Condition","id":"bulk-c1","subject":{"reference":"Patient/bulk-p1"},"code":{"text":"asthma"}}`,
		`{"resourceType":"Condition","id":"bulk-c2","subject":{"reference":"Patient/bulk-p2"},"code":{"text":"gout"}}`,
		`{"resourceType":"Organization","id":"bulk-o1","name":"Clinic"}`,
	} {
		var head struct{ ResourceType, ID string }
		_ = json.Unmarshal([]byte(body), &head)
		w := do(t, http.MethodPut, a+"/fhir/"+head.ResourceType+"/"+head.ID, strings.NewReader(body), bearer(tok, "Content-Type", "application/fhir+json"))
		if w.status >= 300 {
			t.Fatalf("PUT %d: %s", i, w)
		}
	}
	m, _ := bulkExport(t, a, b, tok, "/Patient/$export")
	if !strings.HasPrefix(m.Request, issuer+"/fhir/Patient/$export") {
		t.Errorf("manifest request %q", m.Request)
	}
	counts := checkExport(t, m, issuer, b, a, tok)
	if !cmp.Equal(counts, map[string]int{"Patient": 2, "Condition": 2}) {
		t.Errorf("a patient-level export holds %v, want 2 Patients and 2 Conditions (no Organization)", counts)
	}
}
