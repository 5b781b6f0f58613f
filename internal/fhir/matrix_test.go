package fhir_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"smartgate/internal/fhir"
	"smartgate/internal/fhir/devdata"
	"smartgate/internal/token"
)

// The scope x interaction x patient matrix (SMART App Launch 2.2 "Scopes
// for requesting FHIR resources", DESIGN.md "Status codes"): every scope set
// a SMART app or backend service can hold, against every interaction, on
// the caller's own patient, another patient, and resources in no
// compartment. Expectations are derived from the demo data itself (which
// patient each resource belongs to, which category it has), never from the
// server's own answers.

const (
	obsCat  = "http://terminology.hl7.org/CodeSystem/observation-category"
	condCat = "http://terminology.hl7.org/CodeSystem/condition-category"
	amy     = "pat-amy-shaw"
	jose    = "pat-jose-alvarez"
	lily    = "pat-lily-chen"
)

// demoRes is one resource of the demo data set, parsed.
type demoRes struct {
	Type, ID string
	Body     map[string]any
	Raw      []byte
}

func (d demoRes) key() string { return d.Type + "/" + d.ID }

// demoSet parses devdata.Set().
func demoSet(t testing.TB) []demoRes {
	t.Helper()
	var out []demoRes
	for _, r := range devdata.Set() {
		var m map[string]any
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatalf("demo %s/%s: %v", r.Type, r.ID, err)
		}
		out = append(out, demoRes{Type: r.Type, ID: r.ID, Body: m, Raw: r.Body})
	}
	return out
}

// ofType lists the demo resources of typ.
func ofType(set []demoRes, typ string) []demoRes {
	var out []demoRes
	for _, r := range set {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// refField is body[field].reference ("" when absent).
func refField(body map[string]any, field string) string {
	m, _ := body[field].(map[string]any)
	s, _ := m["reference"].(string)
	return s
}

// codes lists "system|code" of every coding of a CodeableConcept or a list
// of them at body[field].
func codes(body map[string]any, field string) []string {
	var ccs []any
	switch v := body[field].(type) {
	case []any:
		ccs = v
	case map[string]any:
		ccs = []any{v}
	}
	var out []string
	for _, cc := range ccs {
		m, _ := cc.(map[string]any)
		cs, _ := m["coding"].([]any)
		for _, c := range cs {
			cm, _ := c.(map[string]any)
			sys, _ := cm["system"].(string)
			code, _ := cm["code"].(string)
			out = append(out, sys+"|"+code)
		}
	}
	return out
}

// pick returns the id of the first demo resource of typ whose subject is
// Patient/patient and that has the category sysCode ("" for any).
func pick(t testing.TB, set []demoRes, typ, patient, sysCode string) string {
	t.Helper()
	for _, r := range ofType(set, typ) {
		if refField(r.Body, "subject") == "Patient/"+patient && (sysCode == "" || slices.Contains(codes(r.Body, "category"), sysCode)) {
			return r.ID
		}
	}
	t.Fatalf("the demo data has no %s of %s with category %q", typ, patient, sysCode)
	return ""
}

// obsJSON is a valid laboratory Observation of patient; extra are raw JSON
// members added to it (e.g. `"identifier":[...]`).
func obsJSON(patient string, extra ...string) string {
	s := `{"resourceType":"Observation","status":"final",` +
		`"category":[{"coding":[{"system":"` + obsCat + `","code":"laboratory"}]}],` +
		`"code":{"coding":[{"system":"http://loinc.org","code":"2339-0"}],"text":"Glucose"},` +
		`"subject":{"reference":"Patient/` + patient + `"},"effectiveDateTime":"2024-05-01T10:00:00Z",` +
		`"valueQuantity":{"value":101,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}`
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}

// condJSON is a valid problem-list Condition of patient.
func condJSON(patient string, extra ...string) string {
	s := `{"resourceType":"Condition",` +
		`"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},` +
		`"category":[{"coding":[{"system":"` + condCat + `","code":"problem-list-item"}]}],` +
		`"code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003"}],"text":"Hypertension"},` +
		`"subject":{"reference":"Patient/` + patient + `"}`
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}

// withID adds "id" to a resource JSON object.
func withID(body, id string) string {
	return strings.Replace(body, "{", `{"id":"`+id+`",`, 1)
}

// mustCreate stores body as typ with a system token and returns its id.
func (f *fixture) mustCreate(typ, body string) string {
	f.t.Helper()
	r := f.do("POST", "/"+typ, f.token("system/*.cruds", "", ""), body)
	if r.status != http.StatusCreated {
		f.t.Fatalf("creating a %s as system: %d %s", typ, r.status, r.body)
	}
	return r.json["id"].(string)
}

// uniq is a unique identifier value for one test resource.
func uniq(t testing.TB, what string) string {
	return fmt.Sprintf("%s-%d", what, time.Now().UnixNano())
}

// ooText is the OperationOutcome's first issue's details.text and
// diagnostics, for checks that an error names what it is about.
func (r response) ooText() string {
	issues, _ := r.json["issue"].([]any)
	var b strings.Builder
	for _, is := range issues {
		m, _ := is.(map[string]any)
		d, _ := m["details"].(map[string]any)
		txt, _ := d["text"].(string)
		diag, _ := m["diagnostics"].(string)
		b.WriteString(txt + " " + diag + " ")
	}
	return b.String()
}

// all returns every match of a system search of path (a type plus query),
// following next links.
func (f *fixture) all(path string) []string {
	f.t.Helper()
	tok := f.token("system/*.rs", "", "")
	var out []string
	next := path
	for next != "" {
		r := f.do("GET", next, tok, nil)
		if r.status != 200 {
			f.t.Fatalf("GET %s as system = %d %s", next, r.status, r.body)
		}
		out = append(out, r.ids("match")...)
		next = ""
		if u := r.link("next"); u != "" {
			next = strings.TrimPrefix(u, issuer+"/fhir")
		}
		if len(out) > 5000 {
			f.t.Fatalf("GET %s: more than 5000 matches, paging does not end", path)
		}
	}
	return out
}

// link is the url of the Bundle link with the relation rel.
func (r response) link(rel string) string {
	links, _ := r.json["link"].([]any)
	for _, l := range links {
		m, _ := l.(map[string]any)
		if m["relation"] == rel {
			s, _ := m["url"].(string)
			return s
		}
	}
	return ""
}

// subjects maps Type/id to its subject (or patient) reference, as the
// server currently stores it, for every resource of typ.
func (f *fixture) subjects(typ string) map[string]string {
	f.t.Helper()
	tok := f.token("system/*.rs", "", "")
	out := map[string]string{}
	next := "/" + typ + "?_count=1000"
	for next != "" {
		r := f.do("GET", next, tok, nil)
		if r.status != 200 {
			f.t.Fatalf("GET %s = %d", next, r.status)
		}
		entries, _ := r.json["entry"].([]any)
		for _, e := range entries {
			res, _ := e.(map[string]any)["resource"].(map[string]any)
			key := res["resourceType"].(string) + "/" + res["id"].(string)
			out[key] = refField(res, "subject")
			if out[key] == "" {
				out[key] = refField(res, "patient")
			}
		}
		next = ""
		if u := r.link("next"); u != "" {
			next = strings.TrimPrefix(u, issuer+"/fhir")
		}
	}
	return out
}

// want is one expected answer: a status and, for 403, the scope the
// WWW-Authenticate challenge must name ("*" for any scope at all).
type want struct {
	status int
	scope  string
}

func (w want) check(t *testing.T, what string, r response) {
	t.Helper()
	if r.status != w.status {
		t.Errorf("%s: got %d, want %d (%.300s)", what, r.status, w.status, r.body)
		return
	}
	if w.status != http.StatusForbidden {
		return
	}
	h := r.header.Get("WWW-Authenticate")
	if !strings.Contains(h, `error="insufficient_scope"`) || r.json["resourceType"] != "OperationOutcome" {
		t.Errorf("%s: 403 without insufficient_scope challenge and OperationOutcome: %q %.200s", what, h, r.body)
	}
	switch {
	case w.scope == "*" && !strings.Contains(h, `scope="`):
		t.Errorf("%s: 403 WWW-Authenticate %q names no scope that would allow the request (DESIGN.md: insufficient_scope with scope=\"...\")", what, h)
	case w.scope != "*" && w.scope != "" && !strings.Contains(h, `scope="`+w.scope+`"`):
		t.Errorf("%s: 403 WWW-Authenticate %q, want scope=%q", what, h, w.scope)
	}
}

var (
	ok200     = want{status: 200}
	created   = want{status: 201}
	noContent = want{status: 204}
	notFound  = want{status: 404}
)

func forbid(scope string) want { return want{status: 403, scope: scope} }

// matrixRow is one scope set and what each interaction answers under it.
type matrixRow struct {
	name             string
	scope            string
	patient, user    string
	typ              string // the clinical type exercised: Observation or Condition
	sees             string // the patient whose compartment the token sees ("" = every patient)
	other            string // a patient outside it ("" = none)
	constraint       string // system|code of the category a granular scope requires
	readOwn          want   // own resource of typ (matching the constraint)
	readOwnExcluded  want   // own resource of typ outside the constraint (granular scopes)
	readOther        want   // another patient's resource of typ (matching the constraint)
	readOwnPatient   want   // the Patient resource of sees
	readFree         want   // Practitioner, Organization, Medication
	search           want   // typ?_count=1000
	createOwn        want   // typ in sees's compartment
	createOther      want   // typ in other's compartment
	updateMove       want   // own typ moved to other's compartment
	updateOwn        want   // own typ, changed in place
	deleteOwn        want   // own typ
	deleteOther      want   // other's typ
	includesForeign  bool   // _include/_revinclude may bring other patients' resources (unrestricted tokens)
	includesEncAllow bool   // Encounter is readable, so _include=Observation:encounter brings own encounters
}

func matrixRows() []matrixRow {
	lab := obsCat + "|laboratory"
	problem := condCat + "|problem-list-item"
	return []matrixRow{
		{name: "patient/*.rs", scope: "patient/*.rs", patient: amy, typ: "Observation", sees: amy, other: jose,
			readOwn: ok200, readOther: notFound, readOwnPatient: ok200, readFree: ok200, search: ok200,
			createOwn: forbid("patient/Observation.c"), createOther: forbid("patient/Observation.c"),
			updateMove: forbid("patient/Observation.u"), updateOwn: forbid("patient/Observation.u"),
			deleteOwn: forbid("patient/Observation.d"), deleteOther: forbid("patient/Observation.d"), includesEncAllow: true},
		{name: "patient/*.cruds", scope: "patient/*.cruds", patient: amy, typ: "Observation", sees: amy, other: jose,
			readOwn: ok200, readOther: notFound, readOwnPatient: ok200, readFree: ok200, search: ok200,
			createOwn: created, createOther: forbid("user/Observation.c"), updateMove: forbid("user/Observation.u"), updateOwn: ok200,
			deleteOwn: noContent, deleteOther: notFound, includesEncAllow: true},
		{name: "patient/Observation.rs", scope: "patient/Observation.rs", patient: amy, typ: "Observation", sees: amy, other: jose,
			readOwn: ok200, readOther: notFound, readOwnPatient: forbid("patient/Patient.r"), readFree: forbid("patient/%s.r"), search: ok200,
			createOwn: forbid("patient/Observation.c"), createOther: forbid("patient/Observation.c"),
			updateMove: forbid("patient/Observation.u"), updateOwn: forbid("patient/Observation.u"),
			deleteOwn: forbid("patient/Observation.d"), deleteOther: forbid("patient/Observation.d")},
		{name: "patient/Observation.read (v1)", scope: "patient/Observation.read", patient: amy, typ: "Observation", sees: amy, other: jose,
			readOwn: ok200, readOther: notFound, readOwnPatient: forbid("patient/Patient.r"), readFree: forbid("patient/%s.r"), search: ok200,
			createOwn: forbid("patient/Observation.c"), createOther: forbid("patient/Observation.c"),
			updateMove: forbid("patient/Observation.u"), updateOwn: forbid("patient/Observation.u"),
			deleteOwn: forbid("patient/Observation.d"), deleteOther: forbid("patient/Observation.d")},
		{name: "patient/*.read (v1)", scope: "patient/*.read", patient: amy, typ: "Observation", sees: amy, other: jose,
			readOwn: ok200, readOther: notFound, readOwnPatient: ok200, readFree: ok200, search: ok200,
			createOwn: forbid("patient/Observation.c"), createOther: forbid("patient/Observation.c"),
			updateMove: forbid("patient/Observation.u"), updateOwn: forbid("patient/Observation.u"),
			deleteOwn: forbid("patient/Observation.d"), deleteOther: forbid("patient/Observation.d"), includesEncAllow: true},
		{name: "patient/Observation.rs?category=laboratory", scope: "patient/Observation.rs?category=" + lab, patient: amy, typ: "Observation", sees: amy, other: jose,
			constraint: lab, readOwn: ok200, readOwnExcluded: forbid("patient/Observation.r"), readOther: notFound,
			readOwnPatient: forbid("patient/Patient.r"), readFree: forbid("patient/%s.r"), search: ok200,
			createOwn: forbid("patient/Observation.c"), createOther: forbid("patient/Observation.c"),
			updateMove: forbid("patient/Observation.u"), updateOwn: forbid("patient/Observation.u"),
			deleteOwn: forbid("patient/Observation.d"), deleteOther: forbid("patient/Observation.d")},
		{name: "patient/Condition.rs?category=problem-list-item", scope: "patient/Condition.rs?category=" + problem, patient: amy, typ: "Condition", sees: amy, other: jose,
			constraint: problem, readOwn: ok200, readOwnExcluded: forbid("patient/Condition.r"), readOther: notFound,
			readOwnPatient: forbid("patient/Patient.r"), readFree: forbid("patient/%s.r"), search: ok200,
			createOwn: forbid("patient/Condition.c"), createOther: forbid("patient/Condition.c"),
			updateMove: forbid("patient/Condition.u"), updateOwn: forbid("patient/Condition.u"),
			deleteOwn: forbid("patient/Condition.d"), deleteOther: forbid("patient/Condition.d")},
		{name: "user/*.rs Practitioner", scope: "user/*.rs", user: "Practitioner/pra-ines-munoz", typ: "Observation", sees: "", other: "",
			readOwn: ok200, readOther: ok200, readOwnPatient: ok200, readFree: ok200, search: ok200,
			createOwn: forbid("user/Observation.c"), createOther: forbid("user/Observation.c"),
			updateMove: forbid("user/Observation.u"), updateOwn: forbid("user/Observation.u"),
			deleteOwn: forbid("user/Observation.d"), deleteOther: forbid("user/Observation.d"), includesForeign: true, includesEncAllow: true},
		{name: "user/*.rs Patient", scope: "user/*.rs", user: "Patient/" + amy, typ: "Observation", sees: amy, other: jose,
			readOwn: ok200, readOther: notFound, readOwnPatient: ok200, readFree: ok200, search: ok200,
			createOwn: forbid("user/Observation.c"), createOther: forbid("user/Observation.c"),
			updateMove: forbid("user/Observation.u"), updateOwn: forbid("user/Observation.u"),
			deleteOwn: forbid("user/Observation.d"), deleteOther: forbid("user/Observation.d"), includesEncAllow: true},
		{name: "user/*.rs RelatedPerson", scope: "user/*.rs", user: "RelatedPerson/rp-grace-chen", typ: "Observation", sees: lily, other: amy,
			readOwn: ok200, readOther: notFound, readOwnPatient: ok200, readFree: ok200, search: ok200,
			createOwn: forbid("user/Observation.c"), createOther: forbid("user/Observation.c"),
			updateMove: forbid("user/Observation.u"), updateOwn: forbid("user/Observation.u"),
			deleteOwn: forbid("user/Observation.d"), deleteOther: forbid("user/Observation.d"), includesEncAllow: true},
		{name: "system/*.rs", scope: "system/*.rs", typ: "Observation", sees: "", other: "",
			readOwn: ok200, readOther: ok200, readOwnPatient: ok200, readFree: ok200, search: ok200,
			createOwn: forbid("system/Observation.c"), createOther: forbid("system/Observation.c"),
			updateMove: forbid("system/Observation.u"), updateOwn: forbid("system/Observation.u"),
			deleteOwn: forbid("system/Observation.d"), deleteOther: forbid("system/Observation.d"), includesForeign: true, includesEncAllow: true},
		{name: "system/Observation.rs", scope: "system/Observation.rs", typ: "Observation", sees: "", other: "",
			readOwn: ok200, readOther: ok200, readOwnPatient: forbid("system/Patient.r"), readFree: forbid("system/%s.r"), search: ok200,
			createOwn: forbid("system/Observation.c"), createOther: forbid("system/Observation.c"),
			updateMove: forbid("system/Observation.u"), updateOwn: forbid("system/Observation.u"),
			deleteOwn: forbid("system/Observation.d"), deleteOther: forbid("system/Observation.d")},
		{name: "patient/*.rs without a patient", scope: "patient/*.rs", typ: "Observation", sees: amy, other: jose,
			readOwn: forbid("launch/patient"), readOther: forbid("launch/patient"), readOwnPatient: forbid("launch/patient"),
			readFree: forbid("launch/patient"), search: forbid("launch/patient"),
			createOwn: forbid("patient/Observation.c"), createOther: forbid("patient/Observation.c"),
			updateMove: forbid("patient/Observation.u"), updateOwn: forbid("patient/Observation.u"),
			deleteOwn: forbid("patient/Observation.d"), deleteOther: forbid("patient/Observation.d")},
	}
}

// matrixWorld is what the matrix plants in the demo data before it runs:
// resources that point across compartments, so that _include and
// _revinclude have another patient's resource within reach.
type matrixWorld struct {
	set []demoRes
	// obsCross is a laboratory Observation of amy whose encounter is
	// jose's; obsOwn one whose encounter is amy's own.
	obsCross, obsOwn string
	encAmy, encJose  string
	// provJose (jose's compartment) and provAmy (amy's) target them.
	provJose, provAmy string
}

func plantWorld(t *testing.T, f *fixture) matrixWorld {
	t.Helper()
	w := matrixWorld{set: demoSet(t)}
	for _, e := range ofType(w.set, "Encounter") {
		switch refField(e.Body, "subject") {
		case "Patient/" + amy:
			w.encAmy = e.ID
		case "Patient/" + jose:
			w.encJose = e.ID
		}
	}
	w.obsCross = f.mustCreate("Observation", obsJSON(amy, `"encounter":{"reference":"Encounter/`+w.encJose+`"}`))
	w.obsOwn = f.mustCreate("Observation", obsJSON(amy, `"encounter":{"reference":"Encounter/`+w.encAmy+`"}`))
	prov := func(patient, obs string) string {
		return `{"resourceType":"Provenance","target":[{"reference":"Patient/` + patient + `"},{"reference":"Observation/` + obs + `"}],` +
			`"recorded":"2025-01-01T00:00:00Z","agent":[{"who":{"reference":"Practitioner/pra-ines-munoz"}}]}`
	}
	w.provJose = f.mustCreate("Provenance", prov(jose, w.obsCross))
	w.provAmy = f.mustCreate("Provenance", prov(amy, w.obsOwn))
	return w
}

// TestScopeMatrix runs every scope set against every interaction on
// SQLite, and a representative subset on PostgreSQL.
func TestScopeMatrix(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		f := newFixture(t, backend)
		w := plantWorld(t, f)
		for _, row := range matrixRows() {
			if backend == "postgres" && !slices.Contains([]string{"patient/*.cruds", "patient/Observation.rs?category=laboratory", "user/*.rs RelatedPerson", "system/Observation.rs", "patient/*.rs without a patient"}, row.name) {
				continue
			}
			t.Run(strings.ReplaceAll(row.name, "/", "_"), func(t *testing.T) { runMatrixRow(t, f, w, row) })
		}
	})
}

func runMatrixRow(t *testing.T, f *fixture, w matrixWorld, row matrixRow) {
	tok := f.token(row.scope, row.patient, row.user)
	sys := f.token("system/*.cruds", "", "")
	typ := row.typ
	sees := row.sees
	if sees == "" {
		sees = amy
	}
	other := row.other
	if other == "" {
		other = jose
	}
	// Resources to read: own (matching the constraint), own outside it,
	// another patient's.
	constraint := row.constraint
	if constraint == "" && typ == "Observation" {
		constraint = obsCat + "|laboratory"
	}
	own := pick(t, w.set, typ, sees, constraint)
	theirs := pick(t, w.set, typ, other, constraint)

	row.readOwn.check(t, "read own "+typ+"/"+own, f.do("GET", "/"+typ+"/"+own, tok, nil))
	row.readOther.check(t, "read other's "+typ+"/"+theirs, f.do("GET", "/"+typ+"/"+theirs, tok, nil))
	if row.readOwnExcluded.status != 0 {
		excl := ""
		for _, r := range ofType(w.set, typ) {
			if refField(r.Body, "subject") == "Patient/"+sees && !slices.Contains(codes(r.Body, "category"), row.constraint) {
				excl = r.ID
				break
			}
		}
		row.readOwnExcluded.check(t, "read own "+typ+"/"+excl+" outside the scope's constraint", f.do("GET", "/"+typ+"/"+excl, tok, nil))
	}
	row.readOwnPatient.check(t, "read Patient/"+sees, f.do("GET", "/Patient/"+sees, tok, nil))
	for _, ft := range []string{"Practitioner", "Organization", "Medication"} {
		if !slices.Contains(fhir.PatientFreeTypes(), ft) {
			t.Fatalf("%s is not among fhir.PatientFreeTypes() %v", ft, fhir.PatientFreeTypes())
		}
		wf := row.readFree
		wf.scope = strings.ReplaceAll(wf.scope, "%s", ft)
		id := ofType(w.set, ft)[0].ID
		wf.check(t, "read "+ft+"/"+id, f.do("GET", "/"+ft+"/"+id, tok, nil))
	}

	// vread and instance history follow read.
	vr := f.do("GET", "/"+typ+"/"+own+"/_history/1", tok, nil)
	row.readOwn.check(t, "vread own", vr)
	if vr.status == 200 && (vr.json["id"] != own || vr.header.Get("ETag") != `W/"1"`) {
		t.Errorf("vread own: id %v ETag %q", vr.json["id"], vr.header.Get("ETag"))
	}
	row.readOther.check(t, "vread other's", f.do("GET", "/"+typ+"/"+theirs+"/_history/1", tok, nil))
	hi := f.do("GET", "/"+typ+"/"+own+"/_history", tok, nil)
	row.readOwn.check(t, "history of own", hi)
	if hi.status == 200 && (hi.json["type"] != "history" || len(hi.ids("")) != 1) {
		t.Errorf("history of own %s: type %v, %d entries, want 1", own, hi.json["type"], len(hi.ids("")))
	}
	row.readOther.check(t, "history of other's", f.do("GET", "/"+typ+"/"+theirs+"/_history", tok, nil))

	// Search: exactly the resources of the compartment(s) the token sees
	// that match its constraint, and total equal to the entries.
	subj := f.subjects(typ)
	var wantIDs []string
	for key, s := range subj {
		if row.sees != "" && s != "Patient/"+row.sees {
			continue
		}
		if row.constraint != "" {
			r := f.do("GET", "/"+key, sys, nil)
			if !slices.Contains(codes(r.json, "category"), row.constraint) {
				continue
			}
		}
		wantIDs = append(wantIDs, key)
	}
	sr := f.do("GET", "/"+typ+"?_count=1000", tok, nil)
	row.search.check(t, "search "+typ, sr)
	if sr.status == 200 {
		got := sr.ids("match")
		slices.Sort(got)
		slices.Sort(wantIDs)
		if !slices.Equal(got, wantIDs) {
			t.Errorf("search %s: %d matches, want %d; extra %v, missing %v", typ, len(got), len(wantIDs), minus(got, wantIDs), minus(wantIDs, got))
		}
		if total, _ := sr.json["total"].(float64); int(total) != len(got) {
			t.Errorf("search %s: total %v but %d entries", typ, sr.json["total"], len(got))
		}
	}
	// Searching for another patient finds nothing (not an error) unless the
	// token sees every patient.
	pr := f.do("GET", "/"+typ+"?patient="+other, tok, nil)
	row.search.check(t, "search "+typ+"?patient=other", pr)
	if pr.status == 200 && row.sees != "" && len(pr.ids("match")) != 0 {
		t.Errorf("search %s?patient=%s under a token that sees %s: %v", typ, other, row.sees, pr.ids("match"))
	}
	if pr.status == 200 && row.sees == "" && len(pr.ids("match")) == 0 {
		t.Errorf("search %s?patient=%s under a token that sees everyone: nothing", typ, other)
	}

	// Type history lists only what the token may see.
	th := f.do("GET", "/"+typ+"/_history?_count=1000", tok, nil)
	row.search.check(t, "type history", th)
	if th.status == 200 {
		entries, _ := th.json["entry"].([]any)
		if len(entries) == 0 {
			t.Errorf("type history of %s: no entries", typ)
		}
		for _, e := range entries {
			full, _ := e.(map[string]any)["fullUrl"].(string)
			key := strings.TrimPrefix(full, issuer+"/fhir/")
			if s, known := subj[key]; row.sees != "" && known && s != "Patient/"+row.sees {
				t.Errorf("type history of %s under a token that sees %s lists %s (%s)", typ, row.sees, key, s)
			}
			res, _ := e.(map[string]any)["resource"].(map[string]any)
			if res != nil && row.constraint != "" && !slices.Contains(codes(res, "category"), row.constraint) {
				t.Errorf("type history of %s under %s lists %s, outside the constraint (%v)", typ, row.scope, key, codes(res, "category"))
			}
		}
	}

	if typ == "Observation" {
		matrixIncludes(t, f, w, row, tok)
	}
	matrixWrites(t, f, row, tok, sees, other)
}

// matrixIncludes: _include and _revinclude never bring a resource the
// token could not read itself; another patient's Encounter stays out.
func matrixIncludes(t *testing.T, f *fixture, w matrixWorld, row matrixRow, tok string) {
	t.Helper()
	r := f.do("GET", "/Observation?_id="+w.obsCross+","+w.obsOwn+"&_include=Observation:encounter&_revinclude=Provenance:target", tok, nil)
	row.search.check(t, "search with _include and _revinclude", r)
	if r.status != 200 {
		return
	}
	inc := r.ids("include")
	matches := r.ids("match")
	seesAmy := row.sees == "" || row.sees == amy
	if seesAmy && len(matches) != 2 || !seesAmy && len(matches) != 0 {
		t.Errorf("_id search of two Observations of %s: matches %v", amy, matches)
	}
	if total, _ := r.json["total"].(float64); int(total) != len(matches) {
		t.Errorf("search with includes: total %v, %d matches (included resources must not count)", r.json["total"], len(matches))
	}
	for _, key := range inc {
		if rr := f.do("GET", "/"+key, tok, nil); rr.status != 200 {
			t.Errorf("_include/_revinclude brought %s, which a read with the same token answers %d", key, rr.status)
		}
	}
	if !seesAmy {
		if len(inc) != 0 {
			t.Errorf("includes of no match: %v", inc)
		}
		return
	}
	expect := map[string]bool{
		"Encounter/" + w.encAmy:   row.includesEncAllow,
		"Provenance/" + w.provAmy: row.includesEncAllow,
		"Encounter/" + w.encJose:  row.includesForeign,
	}
	for key, want := range expect {
		if got := slices.Contains(inc, key); got != want {
			t.Errorf("_include=Observation:encounter&_revinclude=Provenance:target: %s included %v, want %v (included: %v)", key, got, want, inc)
		}
	}
}

// matrixWrites: create, update and delete, in and out of the compartment;
// every refused write leaves the store as it was (checked as system).
func matrixWrites(t *testing.T, f *fixture, row matrixRow, tok, sees, other string) {
	t.Helper()
	sys := f.token("system/*.cruds", "", "")
	typ := row.typ
	body := obsJSON
	if typ == "Condition" {
		body = condJSON
	}
	ident := func(v string) string { return `"identifier":[{"system":"urn:test:matrix","value":"` + v + `"}]` }
	stored := func(v string) int {
		return len(f.all("/" + typ + "?identifier=urn:test:matrix|" + v))
	}

	v := uniq(t, "own")
	r := f.do("POST", "/"+typ, tok, body(sees, ident(v)))
	row.createOwn.check(t, "create own "+typ, r)
	if n := stored(v); (r.status == 201) != (n == 1) || n > 1 {
		t.Errorf("create own answered %d and stored %d resources", r.status, n)
	}
	v = uniq(t, "other")
	r = f.do("POST", "/"+typ, tok, body(other, ident(v)))
	row.createOther.check(t, "create in another patient's compartment", r)
	if n := stored(v); (r.status == 201) != (n == 1) || n > 1 {
		t.Errorf("create in %s's compartment answered %d and stored %d resources", other, r.status, n)
	}

	// Updates of a resource of sees: moving it to another patient, and
	// changing it in place.
	mine := f.mustCreate(typ, body(sees))
	moved := withID(body(other), mine)
	r = f.do("PUT", "/"+typ+"/"+mine, tok, moved)
	row.updateMove.check(t, "update moving own "+typ+" to "+other, r)
	cur := f.do("GET", "/"+typ+"/"+mine, sys, nil)
	wantVersion := "1"
	if r.status == 200 {
		wantVersion = "2"
	}
	if meta, _ := cur.json["meta"].(map[string]any); meta["versionId"] != wantVersion || (r.status != 200 && refField(cur.json, "subject") != "Patient/"+sees) {
		t.Errorf("after the update answered %d: version %v subject %s", r.status, meta["versionId"], refField(cur.json, "subject"))
	}
	r = f.do("PUT", "/"+typ+"/"+mine, tok, withID(body(sees, ident("in-place")), mine))
	row.updateOwn.check(t, "update own in place", r)

	r = f.do("DELETE", "/"+typ+"/"+mine, tok, nil)
	row.deleteOwn.check(t, "delete own", r)
	after := f.do("GET", "/"+typ+"/"+mine, sys, nil)
	if (r.status == 204) != (after.status == 410) {
		t.Errorf("delete own answered %d; a system read then answers %d", r.status, after.status)
	}
	theirs := f.mustCreate(typ, body(other))
	r = f.do("DELETE", "/"+typ+"/"+theirs, tok, nil)
	row.deleteOther.check(t, "delete another patient's", r)
	after = f.do("GET", "/"+typ+"/"+theirs, sys, nil)
	if (r.status == 204) != (after.status == 410) {
		t.Errorf("delete of %s's answered %d; a system read then answers %d", other, r.status, after.status)
	}
}

// minus lists the elements of a not in b.
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestBinaryAccess: a Binary is in the compartment of the patient whose
// DocumentReference points at it; read as FHIR JSON or as its own content.
func TestBinaryAccess(t *testing.T) {
	f := newFixture(t, "sqlite")
	set := demoSet(t)
	var bin demoRes
	var patient string
	for _, d := range ofType(set, "DocumentReference") {
		content, _ := d.Body["content"].([]any)
		att, _ := content[0].(map[string]any)["attachment"].(map[string]any)
		u, _ := att["url"].(string)
		if id, ok := strings.CutPrefix(u, "Binary/"); ok {
			for _, b := range ofType(set, "Binary") {
				if b.ID == id {
					bin, patient = b, strings.TrimPrefix(refField(d.Body, "subject"), "Patient/")
				}
			}
			break
		}
	}
	if bin.ID == "" {
		t.Fatal("no demo DocumentReference points at a demo Binary")
	}
	otherPatient := jose
	if patient == jose {
		otherPatient = amy
	}
	mine := f.token("patient/*.rs", patient, "")
	theirs := f.token("patient/*.rs", otherPatient, "")
	r := f.do("GET", "/Binary/"+bin.ID, mine, nil)
	if r.status != 200 || r.json["resourceType"] != "Binary" || r.json["data"] != bin.Body["data"] {
		t.Fatalf("Binary/%s under %s's patient/*.rs = %d %.200s", bin.ID, patient, r.status, r.body)
	}
	if r := f.do("GET", "/Binary/"+bin.ID, theirs, nil); r.status != 404 {
		t.Errorf("Binary/%s under %s's patient/*.rs = %d, want 404", bin.ID, otherPatient, r.status)
	}
	if r := f.do("GET", "/Binary/"+bin.ID, theirs, nil, "Accept", "text/plain"); r.status != 404 {
		t.Errorf("raw Binary/%s under %s's patient/*.rs = %d, want 404", bin.ID, otherPatient, r.status)
	}
	raw, err := base64.StdEncoding.DecodeString(bin.Body["data"].(string))
	if err != nil {
		t.Fatal(err)
	}
	r = f.do("GET", "/Binary/"+bin.ID, mine, nil, "Accept", "text/plain")
	if r.status != 200 || string(r.body) != string(raw) || r.header.Get("Content-Type") != bin.Body["contentType"] {
		t.Errorf("Binary/%s with Accept: text/plain = %d Content-Type %q, body %.80q; want the raw %s content", bin.ID, r.status, r.header.Get("Content-Type"), r.body, bin.Body["contentType"])
	}
	// A scope for DocumentReference alone does not read the Binary.
	r = f.do("GET", "/Binary/"+bin.ID, f.token("patient/DocumentReference.rs", patient, ""), nil)
	want{status: 403, scope: "patient/Binary.r"}.check(t, "Binary under patient/DocumentReference.rs", r)
}

// TestTokenRefusals: every way a bearer token can be bad answers 401
// invalid_token saying why (DESIGN.md "Status codes").
func TestTokenRefusals(t *testing.T) {
	f := newFixture(t, "sqlite")
	other := newFixture(t, "sqlite") // another server's keys
	issue := func(f *fixture, c token.Claims) string {
		t.Helper()
		tok, err := f.tokens.Issue(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	base := token.Claims{Subject: "u1", ClientID: "app", Scope: "system/*.rs", Expiry: time.Now().Add(time.Hour).Unix()}
	expired := base
	expired.Expiry = time.Now().Add(-time.Minute).Unix()
	expired.IssuedAt = time.Now().Add(-time.Hour).Unix()
	aud := base
	aud.Audience = "https://elsewhere.example.org/fhir"
	cases := []struct {
		name, tok, reason string
	}{
		{"expired", issue(f, expired), "expired"},
		{"another server's", issue(other, base), "not issued here"},
		{"wrong audience", issue(f, aud), "audience"},
		{"malformed", "a.b.c", "malformed"},
	}
	for _, tc := range cases {
		r := f.do("GET", "/Patient", tc.tok, nil)
		h := r.header.Get("WWW-Authenticate")
		if r.status != 401 || !strings.Contains(h, `error="invalid_token"`) || !strings.Contains(h, tc.reason) || !strings.HasPrefix(h, `Bearer realm="`+issuer+`/fhir"`) {
			t.Errorf("%s token: %d %q, want 401 invalid_token naming %q", tc.name, r.status, h, tc.reason)
		}
		if !strings.Contains(r.ooText(), tc.reason) {
			t.Errorf("%s token: the OperationOutcome does not say %q: %s", tc.name, tc.reason, r.body)
		}
	}
	// The metadata needs no token; a bad token there is not looked at.
	if r := f.do("GET", "/metadata", "a.b.c", nil); r.status != 200 {
		t.Errorf("metadata with a malformed token = %d", r.status)
	}
}

// TestRecreatedIDHidesAnotherPatientsVersions: the id of another
// patient's deleted resource, written again under a patient/*.cruds token
// (refused, or accepted as a new resource), never opens the other
// patient's earlier versions to vread or _history. (Found in a pre-commit
// working copy, where the PUT was accepted and vread checked only the
// current version.)
func TestRecreatedIDHidesAnotherPatientsVersions(t *testing.T) {
	f := newFixture(t, "sqlite")
	sys := f.token("system/*.cruds", "", "")
	id := f.mustCreate("Observation", obsJSON(jose, `"note":[{"text":"jose's secret"}]`))
	if r := f.do("DELETE", "/Observation/"+id, sys, nil); r.status != 204 {
		t.Fatalf("delete as system = %d", r.status)
	}
	tok := f.token("patient/*.cruds", amy, "")
	put := f.do("PUT", "/Observation/"+id, tok, withID(obsJSON(amy), id))
	t.Logf("PUT of %s's deleted Observation id under %s's token: %d", jose, amy, put.status)
	if r := f.do("GET", "/Observation/"+id+"/_history/1", tok, nil); r.status != 404 || strings.Contains(string(r.body), "secret") {
		t.Errorf("vread of version 1 (%s's) under %s's token = %d %.300s; want 404", jose, amy, r.status, r.body)
	}
	if r := f.do("GET", "/Observation/"+id+"/_history", tok, nil); strings.Contains(string(r.body), "secret") || strings.Contains(string(r.body), "Patient/"+jose) {
		t.Errorf("_history under %s's token shows %s's versions: %.400s", amy, jose, r.body)
	}
	if r := f.do("GET", "/Observation/_history?_count=1000", tok, nil); strings.Contains(string(r.body), "jose's secret") {
		t.Errorf("type _history under %s's token shows %s's versions", amy, jose)
	}
}

// TestDeleteOfAnotherPatientsDeletedResource: DELETE of another
// patient's resource answers 404 whether it is live, deleted or never
// existed, so the answer does not tell whether the id was ever used
// (DESIGN.md: 404, "no existence leak").
func TestDeleteOfAnotherPatientsDeletedResource(t *testing.T) {
	f := newFixture(t, "sqlite")
	sys := f.token("system/*.cruds", "", "")
	tok := f.token("patient/*.cruds", amy, "")
	id := f.mustCreate("Observation", obsJSON(jose))
	if r := f.do("DELETE", "/Observation/"+id, tok, nil); r.status != 404 {
		t.Fatalf("DELETE of %s's live Observation under %s's token = %d, want 404", jose, amy, r.status)
	}
	if r := f.do("DELETE", "/Observation/"+id, sys, nil); r.status != 204 {
		t.Fatalf("delete as system = %d", r.status)
	}
	if r := f.do("DELETE", "/Observation/never-existed-1", tok, nil); r.status != 404 {
		t.Errorf("DELETE of an id that never existed = %d, want 404", r.status)
	}
	if r := f.do("DELETE", "/Observation/"+id, tok, nil); r.status != 404 {
		t.Errorf("DELETE of %s's deleted Observation under %s's token = %d, want 404 like any id outside the compartment", jose, amy, r.status)
	}
}

// The four tests below each show an access hole of de4b978 (they fail
// there); 802a6b1 closed them, and they stay as its regression tests. Their
// comments describe the hole.

// TestDocumentReferenceDoesNotOpenAnotherPatientsBinary: a patient/*.cruds
// token writes a DocumentReference about its own patient whose attachment
// points at another patient's Binary, and then reads that Binary (another
// patient's clinical note). The DocumentReference's index links the Binary
// into the writer's compartment (store.Index.Links) without any check that
// the writer may read it.
func TestDocumentReferenceDoesNotOpenAnotherPatientsBinary(t *testing.T) {
	f := newFixture(t, "sqlite")
	set := demoSet(t)
	var theirs string
	for _, d := range ofType(set, "DocumentReference") {
		if refField(d.Body, "subject") == "Patient/"+jose {
			content, _ := d.Body["content"].([]any)
			att, _ := content[0].(map[string]any)["attachment"].(map[string]any)
			theirs, _ = att["url"].(string)
			break
		}
	}
	if !strings.HasPrefix(theirs, "Binary/") {
		t.Fatalf("no demo DocumentReference of %s points at a Binary", jose)
	}
	tok := f.token("patient/*.cruds", amy, "")
	if r := f.do("GET", "/"+theirs, tok, nil); r.status != 404 {
		t.Fatalf("%s under %s's token before = %d, want 404", theirs, amy, r.status)
	}
	dr := `{"resourceType":"DocumentReference","status":"current","type":{"text":"note"},"subject":{"reference":"Patient/` + amy + `"},` +
		`"content":[{"attachment":{"contentType":"text/plain","url":"` + theirs + `"}}]}`
	w := f.do("POST", "/DocumentReference", tok, dr)
	t.Logf("POST DocumentReference pointing at %s's %s under %s's patient/*.cruds: %d", jose, theirs, amy, w.status)
	if r := f.do("GET", "/"+theirs, tok, nil, "Accept", "text/plain"); r.status != 404 {
		t.Errorf("%s (%s's note) under %s's token after her DocumentReference = %d %.80q, want 404", theirs, jose, amy, r.status, r.body)
	}
}

// TestNoWriteIntoAnotherPatientsCompartmentBySecondReference: a write
// under a patient/ scope must stay in the token's compartment, and it
// does, but nothing keeps it out of other compartments: an Observation of
// amy whose performer is Patient/jose is in jose's compartment too
// (FHIR R4 Patient CompartmentDefinition: Observation subject, performer),
// so amy's patient/*.cruds token plants a resource that jose's app then
// reads as his own. authorize() gives writes the condition
// InCompartment{amy}, which such a resource satisfies.
func TestNoWriteIntoAnotherPatientsCompartmentBySecondReference(t *testing.T) {
	f := newFixture(t, "sqlite")
	v := uniq(t, "second-ref")
	r := f.do("POST", "/Observation", f.token("patient/*.cruds", amy, ""),
		obsJSON(amy, `"performer":[{"reference":"Patient/`+jose+`"}]`, `"identifier":[{"system":"urn:test:matrix","value":"`+v+`"}]`))
	if r.status == 201 {
		t.Errorf("POST Observation of %s with performer Patient/%s under %s's patient/*.cruds = 201, want it refused (it enters %s's compartment)", amy, jose, amy, jose)
	}
	if got := f.do("GET", "/Observation?identifier=urn:test:matrix|"+v, f.token("patient/*.rs", jose, ""), nil); len(got.ids("match")) != 0 {
		t.Errorf("%s's patient/*.rs token finds the Observation %s wrote: %v", jose, amy, got.ids("match"))
	}
}

// TestChainedSearchStaysWithinAccess: a chained parameter
// is evaluated on the referenced resources without the caller's access
// condition for their type (searchparse.go criterion builds store.Chain with no
// access check), so a patient/*.cruds token learns facts about another
// patient's resources: it points one of its own Observations at another
// patient's Encounter and asks questions about it through the chain.
func TestChainedSearchStaysWithinAccess(t *testing.T) {
	f := newFixture(t, "sqlite")
	set := demoSet(t)
	var enc demoRes
	for _, e := range ofType(set, "Encounter") {
		if refField(e.Body, "subject") == "Patient/"+jose {
			enc = e
			break
		}
	}
	class, _ := enc.Body["class"].(map[string]any)["code"].(string)
	tok := f.token("patient/*.cruds", amy, "")
	w := f.do("POST", "/Observation", tok, obsJSON(amy, `"encounter":{"reference":"Encounter/`+enc.ID+`"}`))
	if w.status != 201 {
		t.Fatalf("POST Observation = %d %s", w.status, w.body)
	}
	id := w.json["id"].(string)
	if r := f.do("GET", "/Encounter/"+enc.ID, tok, nil); r.status != 404 {
		t.Fatalf("Encounter/%s under %s's token = %d, want 404", enc.ID, amy, r.status)
	}
	for _, q := range []string{"encounter:Encounter.class=" + class, "encounter:Encounter.patient=" + jose} {
		r := f.do("GET", "/Observation?_id="+id+"&"+q, tok, nil)
		if r.status == 200 && len(r.ids("match")) != 0 {
			t.Errorf("Observation?_id=%s&%s under %s's token matches: the chain read %s's Encounter/%s", id, q, amy, jose, enc.ID)
		}
	}
}

// TestCareRelationshipNoSelfGrant: under fhir.practitioner_access
// care-relationship, a practitioner's user/*.cruds token reaches only the
// patients linked to the practitioner, yet it may create an Encounter of an
// unlinked patient that names the practitioner as participant: the write's
// access condition (LinkedPatients) is checked after the write, when the
// new Encounter itself supplies the link, and from then on the token reads
// that patient's whole record.
func TestCareRelationshipNoSelfGrant(t *testing.T) {
	f := newFixture(t, "sqlite", func(d *fhir.Deps) { d.PractitionerAccess = "care-relationship" })
	sys := f.token("system/*.rs", "", "")
	// A practitioner and a patient not linked to each other.
	var dr, stranger string
	for _, p := range devdata.Practitioners() {
		tok := f.token("user/*.rs", "", "Practitioner/"+p)
		for _, pat := range devdata.Patients() {
			if f.do("GET", "/Patient/"+pat, tok, nil).status == 404 {
				dr, stranger = p, pat
				break
			}
		}
		if dr != "" {
			break
		}
	}
	if dr == "" {
		t.Fatal("every demo practitioner reaches every patient under care-relationship")
	}
	tok := f.token("user/*.cruds", "", "Practitioner/"+dr)
	enc := `{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},` +
		`"subject":{"reference":"Patient/` + stranger + `"},"participant":[{"individual":{"reference":"Practitioner/` + dr + `"}}]}`
	w := f.do("POST", "/Encounter", tok, enc)
	t.Logf("POST Encounter of %s naming Practitioner/%s: %d", stranger, dr, w.status)
	if r := f.do("GET", "/Patient/"+stranger, tok, nil); r.status != 404 {
		t.Errorf("Practitioner/%s reads unlinked Patient/%s after writing an Encounter for it: %d, want 404 (and the write refused)", dr, stranger, r.status)
	}
	if w.status == 201 {
		if n := len(f.do("GET", "/Encounter?subject="+stranger+"&participant=Practitioner/"+dr, sys, nil).ids("match")); n == 0 {
			t.Errorf("the write answered 201 but stored nothing")
		}
	}
}

// TestGranularScopeWrites: a query-constrained write scope creates and
// updates only resources that match its constraint (403 naming the scope
// otherwise), and nothing outside it is stored.
func TestGranularScopeWrites(t *testing.T) {
	f := newFixture(t, "sqlite")
	tok := f.token("patient/Observation.cruds?category="+obsCat+"|laboratory", amy, "")
	vital := func(extra ...string) string {
		return strings.Replace(obsJSON(amy, extra...), `"code":"laboratory"`, `"code":"vital-signs"`, 1)
	}
	v := uniq(t, "granular")
	r := f.do("POST", "/Observation", tok, vital(`"identifier":[{"system":"urn:test:matrix","value":"`+v+`"}]`))
	forbid("patient/Observation.c").check(t, "create a vital-signs Observation under a laboratory scope", r)
	if n := len(f.all("/Observation?identifier=urn:test:matrix|" + v)); n != 0 {
		t.Errorf("the refused create stored %d resources", n)
	}
	r = f.do("POST", "/Observation", tok, obsJSON(amy))
	created.check(t, "create a laboratory Observation under a laboratory scope", r)
	id, _ := r.json["id"].(string)
	r = f.do("PUT", "/Observation/"+id, tok, withID(vital(), id))
	forbid("patient/Observation.u").check(t, "update laboratory -> vital-signs under a laboratory scope", r)
	if cur := f.do("GET", "/Observation/"+id, f.token("system/*.rs", "", ""), nil); cur.header.Get("ETag") != `W/"1"` {
		t.Errorf("the refused update changed the Observation: ETag %s", cur.header.Get("ETag"))
	}
	ok200.check(t, "update laboratory in place", f.do("PUT", "/Observation/"+id, tok, withID(obsJSON(amy, `"note":[{"text":"checked"}]`), id)))
	noContent.check(t, "delete laboratory", f.do("DELETE", "/Observation/"+id, tok, nil))
	vid := f.mustCreate("Observation", vital())
	forbid("patient/Observation.d").check(t, "delete vital-signs under a laboratory scope", f.do("DELETE", "/Observation/"+vid, tok, nil))
}
