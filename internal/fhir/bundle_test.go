package fhir_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// Batch and transaction (FHIR R4 §3.1.0.11, http.html#transaction).

// entry is one Bundle entry of a request.
type entry struct {
	FullURL  string         `json:"fullUrl,omitempty"`
	Resource map[string]any `json:"resource,omitempty"`
	Request  map[string]any `json:"request,omitempty"`
}

func bundleJSON(t *testing.T, typ string, entries ...entry) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": typ, "entry": entries})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func res(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return m
}

func req(method, url string) map[string]any { return map[string]any{"method": method, "url": url} }

// responseEntries are the entries of a batch-response or
// transaction-response: each entry's resource and response.
func (r response) responseEntries() []map[string]any {
	var out []map[string]any
	entries, _ := r.json["entry"].([]any)
	for _, e := range entries {
		m, _ := e.(map[string]any)
		out = append(out, m)
	}
	return out
}

func entryStatus(e map[string]any) string {
	resp, _ := e["response"].(map[string]any)
	s, _ := resp["status"].(string)
	return s
}

func entryField(e map[string]any, field string) string {
	resp, _ := e["response"].(map[string]any)
	s, _ := resp[field].(string)
	return s
}

const uuidPatient = "urn:uuid:8f0c9a3e-5b1d-4c1e-9d2a-6a3f2b7c1d01"

func patientJSON(family, ident string) string {
	return `{"resourceType":"Patient","name":[{"family":"` + family + `"}],"identifier":[{"system":"urn:test:bundle","value":"` + ident + `"}]}`
}

// TestTransactionReferences: a Patient and an Observation that names it by
// its urn:uuid fullUrl are stored together, the reference rewritten to the
// Patient's new id.
func TestTransactionReferences(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		f := newFixture(t, backend)
		sys := f.token("system/*.cruds", "", "")
		ident := uniq(t, "tx")
		obs := res(t, obsJSON("x"))
		obs["subject"] = map[string]any{"reference": uuidPatient}
		body := bundleJSON(t, "transaction",
			entry{Resource: obs, Request: req("POST", "Observation")}, // before the Patient: order in the Bundle does not matter
			entry{FullURL: uuidPatient, Resource: res(t, patientJSON("Urn", ident)), Request: req("POST", "Patient")},
		)
		r := f.do("POST", "", sys, body)
		if r.status != 200 || r.json["type"] != "transaction-response" {
			t.Fatalf("transaction = %d %s", r.status, r.body)
		}
		es := r.responseEntries()
		if len(es) != 2 || entryStatus(es[0]) != "201 Created" || entryStatus(es[1]) != "201 Created" {
			t.Fatalf("transaction-response entries: %s", r.body)
		}
		// The response entries follow the request's order.
		obsRes, _ := es[0]["resource"].(map[string]any)
		patRes, _ := es[1]["resource"].(map[string]any)
		if obsRes["resourceType"] != "Observation" || patRes["resourceType"] != "Patient" {
			t.Fatalf("response entries out of order: %v, %v", obsRes["resourceType"], patRes["resourceType"])
		}
		pid, _ := patRes["id"].(string)
		if ref := refField(obsRes, "subject"); ref != "Patient/"+pid {
			t.Errorf("the Observation's subject is %q, want Patient/%s", ref, pid)
		}
		for i, e := range es {
			loc := entryField(e, "location")
			if !strings.HasPrefix(loc, issuer+"/fhir/") || !strings.HasSuffix(loc, "/_history/1") || entryField(e, "etag") != `W/"1"` || e["fullUrl"] == nil {
				t.Errorf("entry %d: location %q etag %q fullUrl %v", i, loc, entryField(e, "etag"), e["fullUrl"])
			}
		}
		// The stored Observation is in the new Patient's compartment.
		found := f.all("/Observation?patient=" + pid)
		if len(found) != 1 || found[0] != "Observation/"+obsRes["id"].(string) {
			t.Errorf("Observation?patient=%s = %v", pid, found)
		}
		if n := len(f.all("/Observation?subject=" + uuidPatient)); n != 0 {
			t.Errorf("%d Observations still point at the urn:uuid", n)
		}
		// A patient/*.cruds token of that new patient reads both.
		mine := f.token("patient/*.cruds", pid, "")
		if r := f.do("GET", "/Observation/"+obsRes["id"].(string), mine, nil); r.status != 200 {
			t.Errorf("the new patient reads the Observation: %d", r.status)
		}
	})
}

// TestTransactionAllOrNothing: one bad entry and nothing is stored; the
// error names the entry.
func TestTransactionAllOrNothing(t *testing.T) {
	f := newFixture(t, "sqlite")
	sys := f.token("system/*.cruds", "", "")
	victim := f.mustCreate("Observation", obsJSON(amy))
	cases := []struct {
		name    string
		tok     string
		entries func(ident string) []entry
		status  int
		words   []string
	}{
		{name: "invalid resource", tok: sys, status: 400, words: []string{"entry 2", "Observation"},
			entries: func(ident string) []entry {
				bad := res(t, obsJSON(amy))
				bad["bogus"] = true
				return []entry{
					{FullURL: uuidPatient, Resource: res(t, patientJSON("Rollback", ident)), Request: req("POST", "Patient")},
					{Request: req("DELETE", "Observation/"+victim)},
					{Resource: bad, Request: req("POST", "Observation")},
				}
			}},
		{name: "entry without request", tok: sys, status: 400, words: []string{"entry 1"},
			entries: func(ident string) []entry {
				return []entry{
					{Resource: res(t, patientJSON("Rollback", ident)), Request: req("POST", "Patient")},
					{Resource: res(t, obsJSON(amy))},
				}
			}},
		{name: "update of a missing version", tok: sys, status: 412, words: []string{"entry 1"},
			entries: func(ident string) []entry {
				upd := res(t, withID(obsJSON(amy), victim))
				rq := req("PUT", "Observation/"+victim)
				rq["ifMatch"] = `W/"9"`
				return []entry{
					{Resource: res(t, patientJSON("Rollback", ident)), Request: req("POST", "Patient")},
					{Resource: upd, Request: rq},
				}
			}},
		{name: "an entry outside the token's compartment", tok: f.token("patient/*.cruds", amy, ""), status: 403, words: []string{"entry 1"},
			entries: func(ident string) []entry {
				mine := res(t, obsJSON(amy, `"identifier":[{"system":"urn:test:bundle","value":"`+ident+`"}]`))
				theirs := res(t, obsJSON(jose, `"identifier":[{"system":"urn:test:bundle","value":"`+ident+`"}]`))
				return []entry{{Resource: mine, Request: req("POST", "Observation")}, {Resource: theirs, Request: req("POST", "Observation")}}
			}},
		{name: "an unsupported type", tok: sys, status: 400, words: []string{"entry 1", "Basic"},
			entries: func(ident string) []entry {
				return []entry{
					{Resource: res(t, patientJSON("Rollback", ident)), Request: req("POST", "Patient")},
					{Resource: map[string]any{"resourceType": "Basic"}, Request: req("POST", "Basic")},
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ident := uniq(t, "rollback")
			r := f.do("POST", "", c.tok, bundleJSON(t, "transaction", c.entries(ident)...))
			if r.status != c.status || r.json["resourceType"] != "OperationOutcome" {
				t.Errorf("transaction = %d, want %d with an OperationOutcome: %.300s", r.status, c.status, r.body)
			}
			for _, w := range c.words {
				if !strings.Contains(r.ooText(), w) {
					t.Errorf("the OperationOutcome does not name %q: %s", w, r.ooText())
				}
			}
			if n := len(f.all("/Patient?identifier=urn:test:bundle|"+ident)) + len(f.all("/Observation?identifier=urn:test:bundle|"+ident)); n != 0 {
				t.Errorf("a failed transaction stored %d resources", n)
			}
			if r := f.do("GET", "/Observation/"+victim, sys, nil); r.status != 200 || r.header.Get("ETag") != `W/"1"` {
				t.Errorf("a failed transaction changed Observation/%s: %d %s", victim, r.status, r.header.Get("ETag"))
			}
		})
	}
}

// TestTransactionOrder: every entry answers in the Bundle's order, with
// the status of its own interaction, whatever order they run in.
func TestTransactionOrder(t *testing.T) {
	f := newFixture(t, "sqlite")
	sys := f.token("system/*.cruds", "", "")
	pid := f.mustCreate("Patient", patientJSON("Before", uniq(t, "order")))
	doomed := f.mustCreate("Observation", obsJSON(pid))
	r := f.do("POST", "", sys, bundleJSON(t, "transaction",
		entry{Request: req("GET", "Patient/"+pid)},
		entry{Request: req("GET", "Observation?patient="+pid)},
		entry{Resource: res(t, withID(patientJSON("After", "x"), pid)), Request: req("PUT", "Patient/"+pid)},
		entry{Resource: res(t, obsJSON(pid)), Request: req("POST", "Observation")},
		entry{Request: req("DELETE", "Observation/"+doomed)},
	))
	if r.status != 200 {
		t.Fatalf("transaction = %d %s", r.status, r.body)
	}
	es := r.responseEntries()
	if len(es) != 5 {
		t.Fatalf("%d response entries", len(es))
	}
	for i, w := range []string{"200 OK", "200 OK", "200 OK", "201 Created", "204 No Content"} {
		if got := entryStatus(es[i]); got != w {
			t.Errorf("entry %d: status %q, want %q", i, got, w)
		}
	}
	if read, _ := es[0]["resource"].(map[string]any); read["resourceType"] != "Patient" || read["id"] != pid {
		t.Errorf("entry 0: %v/%v, want Patient/%s", read["resourceType"], read["id"], pid)
	}
	if search, _ := es[1]["resource"].(map[string]any); search["type"] != "searchset" {
		t.Errorf("entry 1: %v, want a searchset", search["type"])
	}
	if upd, _ := es[2]["resource"].(map[string]any); entryField(es[2], "etag") != `W/"2"` || upd["id"] != pid {
		t.Errorf("entry 2: etag %q", entryField(es[2], "etag"))
	}
	if r := f.do("GET", "/Observation/"+doomed, sys, nil); r.status != 410 {
		t.Errorf("Observation/%s after the transaction = %d, want 410", doomed, r.status)
	}
	if r := f.do("GET", "/Patient/"+pid, sys, nil); r.header.Get("ETag") != `W/"2"` {
		t.Errorf("Patient/%s after the transaction: ETag %s", pid, r.header.Get("ETag"))
	}
}

// TestTransactionReadsSeeItsWrites: R4 http.html#trules processes a
// transaction's DELETEs, then POSTs, then PUTs, then GETs, so a GET sees
// the Bundle's own writes, wherever it stands in the Bundle.
func TestTransactionReadsSeeItsWrites(t *testing.T) {
	f := newFixture(t, "sqlite")
	sys := f.token("system/*.cruds", "", "")
	pid := f.mustCreate("Patient", patientJSON("Before", uniq(t, "order")))
	doomed := f.mustCreate("Observation", obsJSON(pid))
	r := f.do("POST", "", sys, bundleJSON(t, "transaction",
		entry{Request: req("GET", "Patient/"+pid)},
		entry{Request: req("GET", "Observation?patient="+pid)},
		entry{Resource: res(t, withID(patientJSON("After", "x"), pid)), Request: req("PUT", "Patient/"+pid)},
		entry{Resource: res(t, obsJSON(pid)), Request: req("POST", "Observation")},
		entry{Resource: res(t, obsJSON(pid)), Request: req("POST", "Observation")},
		entry{Request: req("DELETE", "Observation/"+doomed)},
	))
	es := r.responseEntries()
	if r.status != 200 || len(es) != 6 {
		t.Fatalf("transaction = %d %s", r.status, r.body)
	}
	read, _ := es[0]["resource"].(map[string]any)
	if names, _ := read["name"].([]any); len(names) != 1 || names[0].(map[string]any)["family"] != "After" {
		t.Errorf("GET Patient/%s in the transaction saw %v, want the name its PUT wrote", pid, read["name"])
	}
	search, _ := es[1]["resource"].(map[string]any)
	if search["total"] != float64(2) {
		t.Errorf("GET Observation?patient=%s in the transaction: total %v, want 2 (its two creates, not the deleted one)", pid, search["total"])
	}
}

// TestBatch: each entry on its own, with its own status and, when it
// fails, its OperationOutcome; the others still apply.
func TestBatch(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		f := newFixture(t, backend)
		sys := f.token("system/*.cruds", "", "")
		ident := uniq(t, "batch")
		bad := res(t, obsJSON(amy))
		bad["valueQuantity"] = map[string]any{"value": "high"}
		gone := f.mustCreate("Observation", obsJSON(amy))
		r := f.do("POST", "", sys, bundleJSON(t, "batch",
			entry{Resource: res(t, patientJSON("Batch", ident)), Request: req("POST", "Patient")},
			entry{Resource: bad, Request: req("POST", "Observation")},
			entry{Request: req("GET", "Patient/"+amy)},
			entry{Request: req("GET", "Patient/nobody-here")},
			entry{Request: req("DELETE", "Observation/"+gone)},
			entry{Resource: res(t, obsJSON(amy))}, // no request
			entry{Request: req("GET", "Observation?patient="+amy+"&date=notadate")},
			entry{Request: req("PATCH", "Patient/"+amy)},
		))
		if r.status != 200 || r.json["type"] != "batch-response" {
			t.Fatalf("batch = %d %s", r.status, r.body)
		}
		es := r.responseEntries()
		want := []struct {
			status string
			words  string // in the entry's OperationOutcome
		}{
			{"201 Created", ""}, {"400 Bad Request", "Observation.value"}, {"200 OK", ""}, {"404 Not Found", "nobody-here"},
			{"204 No Content", ""}, {"400 Bad Request", "entry 5"}, {"400 Bad Request", "date"}, {"400 Bad Request", "PATCH"},
		}
		if len(es) != len(want) {
			t.Fatalf("%d response entries, want %d: %s", len(es), len(want), r.body)
		}
		for i, w := range want {
			if got := entryStatus(es[i]); got != w.status {
				t.Errorf("entry %d: status %q, want %q", i, got, w.status)
			}
			resp, _ := es[i]["response"].(map[string]any)
			oo, _ := resp["outcome"].(map[string]any)
			if w.words == "" {
				if oo != nil {
					t.Errorf("entry %d: an outcome on success: %v", i, oo)
				}
				continue
			}
			b, _ := json.Marshal(oo)
			if oo["resourceType"] != "OperationOutcome" || !strings.Contains(string(b), w.words) {
				t.Errorf("entry %d: outcome %s, want an OperationOutcome naming %q", i, b, w.words)
			}
		}
		if read, _ := es[2]["resource"].(map[string]any); read["id"] != amy {
			t.Errorf("entry 2 read %v", read["id"])
		}
		if n := len(f.all("/Patient?identifier=urn:test:bundle|" + ident)); n != 1 {
			t.Errorf("the good create of a batch with failing entries stored %d Patients, want 1", n)
		}
		if r := f.do("GET", "/Observation/"+gone, sys, nil); r.status != 410 {
			t.Errorf("the batch's delete: Observation/%s = %d", gone, r.status)
		}
		// Each entry is checked against the token's scopes on its own.
		mine := f.token("patient/*.cruds", amy, "")
		r = f.do("POST", "", mine, bundleJSON(t, "batch",
			entry{Resource: res(t, obsJSON(amy)), Request: req("POST", "Observation")},
			entry{Resource: res(t, obsJSON(jose)), Request: req("POST", "Observation")},
			entry{Request: req("GET", "Patient/"+jose)},
		))
		es = r.responseEntries()
		if r.status != 200 || len(es) != 3 || entryStatus(es[0]) != "201 Created" || entryStatus(es[1]) != "403 Forbidden" || entryStatus(es[2]) != "404 Not Found" {
			t.Errorf("batch under %s's patient/*.cruds: %d %s", amy, r.status, r.body)
		}
	})
}

// TestBundlePreferMinimal: Prefer: return=minimal leaves the resources out
// of a transaction-response and a batch-response, but not the status,
// location and ETag; reads keep their resource.
func TestBundlePreferMinimal(t *testing.T) {
	f := newFixture(t, "sqlite")
	sys := f.token("system/*.cruds", "", "")
	for _, typ := range []string{"transaction", "batch"} {
		r := f.do("POST", "", sys, bundleJSON(t, typ,
			entry{Resource: res(t, patientJSON("Minimal", uniq(t, typ))), Request: req("POST", "Patient")},
			entry{Request: req("GET", "Patient/"+amy)},
		), "Prefer", "return=minimal")
		es := r.responseEntries()
		if r.status != 200 || len(es) != 2 {
			t.Fatalf("%s with return=minimal = %d %s", typ, r.status, r.body)
		}
		if es[0]["resource"] != nil || entryStatus(es[0]) != "201 Created" || !strings.Contains(entryField(es[0], "location"), "/fhir/Patient/") || entryField(es[0], "etag") != `W/"1"` {
			t.Errorf("%s: the create's entry with return=minimal: %v", typ, es[0])
		}
		if read, _ := es[1]["resource"].(map[string]any); read["id"] != amy {
			t.Errorf("%s: the read's entry with return=minimal lost its resource: %v", typ, es[1])
		}
	}
	// The same preference on a plain create and update.
	r := f.do("POST", "/Patient", sys, patientJSON("Minimal", "single"), "Prefer", "return=minimal")
	if r.status != 201 || len(r.body) != 0 || r.header.Get("Location") == "" || r.header.Get("ETag") != `W/"1"` {
		t.Errorf("create with return=minimal: %d %q Location %q ETag %q", r.status, r.body, r.header.Get("Location"), r.header.Get("ETag"))
	}
	r = f.do("POST", "/Patient", sys, patientJSON("Outcome", "single"), "Prefer", "return=OperationOutcome")
	if r.status != 201 || r.json["resourceType"] != "OperationOutcome" {
		t.Errorf("create with return=OperationOutcome: %d %.200s", r.status, r.body)
	}
}

// TestBundleRefused: what POST /fhir does not take.
func TestBundleRefused(t *testing.T) {
	f := newFixture(t, "sqlite")
	sys := f.token("system/*.cruds", "", "")
	for _, c := range []struct {
		name, body string
		status     int
	}{
		{"a collection Bundle", `{"resourceType":"Bundle","type":"collection","entry":[]}`, 400},
		{"not a Bundle", `{"resourceType":"Patient"}`, 400},
		{"not JSON", `{"resourceType":`, 400},
	} {
		if r := f.do("POST", "", sys, c.body); r.status != c.status || r.json["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: %d %.200s, want %d", c.name, r.status, r.body, c.status)
		}
	}
	if r := f.do("POST", "", "", bundleJSON(t, "batch")); r.status != 401 {
		t.Errorf("a batch without a token = %d, want 401", r.status)
	}
	// An empty transaction is a transaction that does nothing.
	if r := f.do("POST", "", sys, `{"resourceType":"Bundle","type":"transaction"}`); r.status != 200 || r.json["type"] != "transaction-response" {
		t.Errorf("an empty transaction = %d %.200s", r.status, r.body)
	}
}

// TestTransactionKeepsIdentifierEqualToFullURL: a transaction rewrites the
// references to an entry's fullUrl (R4 http.html#trules), not other values
// that happen to equal it, such as an Identifier that keeps the sender's
// urn:uuid (system urn:ietf:rfc:3986).
func TestTransactionKeepsIdentifierEqualToFullURL(t *testing.T) {
	f := newFixture(t, "sqlite")
	sys := f.token("system/*.cruds", "", "")
	p := res(t, `{"resourceType":"Patient","name":[{"family":"Keeps"}],"identifier":[{"system":"urn:ietf:rfc:3986","value":"`+uuidPatient+`"}]}`)
	r := f.do("POST", "", sys, bundleJSON(t, "transaction", entry{FullURL: uuidPatient, Resource: p, Request: req("POST", "Patient")}))
	if r.status != 200 {
		t.Fatalf("transaction = %d %s", r.status, r.body)
	}
	stored, _ := r.responseEntries()[0]["resource"].(map[string]any)
	ids, _ := stored["identifier"].([]any)
	if len(ids) != 1 || ids[0].(map[string]any)["value"] != uuidPatient {
		t.Errorf("the Patient's identifier became %v, want value %s kept", ids, uuidPatient)
	}
}
