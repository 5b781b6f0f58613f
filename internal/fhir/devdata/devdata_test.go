package devdata

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// parsed is the set decoded once per test.
type parsed struct {
	Resource
	json map[string]any
}

func decodeSet(t *testing.T) []parsed {
	t.Helper()
	var out []parsed
	for _, r := range Set() {
		var m map[string]any
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatalf("%s/%s: body is not a JSON object: %v", r.Type, r.ID, err)
		}
		out = append(out, parsed{r, m})
	}
	return out
}

func TestSetIsDeterministic(t *testing.T) {
	a, b := Set(), Set()
	if len(a) != len(b) {
		t.Fatalf("Set() returned %d resources, then %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].ID != b[i].ID || !bytes.Equal(a[i].Body, b[i].Body) {
			t.Fatalf("resource %d differs between calls: %s/%s vs %s/%s", i, a[i].Type, a[i].ID, b[i].Type, b[i].ID)
		}
	}
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

func TestBodies(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range decodeSet(t) {
		key := r.Type + "/" + r.ID
		if !idPattern.MatchString(r.ID) {
			t.Errorf("%s: id does not match %s", key, idPattern)
		}
		if seen[key] {
			t.Errorf("%s: id used twice", key)
		}
		seen[key] = true
		if got := r.json["resourceType"]; got != r.Type {
			t.Errorf("%s: resourceType %v, want %s", key, got, r.Type)
		}
		if got := r.json["id"]; got != r.ID {
			t.Errorf("%s: id %v, want %s", key, got, r.ID)
		}
		if !bytes.HasPrefix(r.Body, []byte(`{"resourceType":"`+r.Type+`","id":"`+r.ID+`"`)) {
			t.Errorf("%s: body does not start with resourceType and id: %.60s", key, r.Body)
		}
		meta, _ := r.json["meta"].(map[string]any)
		for k := range meta {
			if k != "profile" {
				t.Errorf("%s: meta.%s is set; only the store sets it", key, k)
			}
		}
		if meta == nil && r.Type != "Binary" && r.Type != "Group" {
			t.Errorf("%s: no meta.profile", key)
		}
		for _, p := range list(meta["profile"]) {
			if !strings.HasPrefix(p.(string), usCore) {
				t.Errorf("%s: profile %v is not a US Core profile", key, p)
			}
		}
	}
}

// walk calls f for every JSON object in v, with its path.
func walk(v any, path string, f func(path string, o map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		f(path, v)
		for k, x := range v {
			walk(x, path+"."+k, f)
		}
	case []any:
		for _, x := range v {
			walk(x, path, f)
		}
	}
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

var refPattern = regexp.MustCompile(`^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$`)

// TestReferences checks that every Reference.reference (and the
// attachment URLs of documents) names a resource of the set that comes
// earlier in load order.
func TestReferences(t *testing.T) {
	set := decodeSet(t)
	pos := map[string]int{}
	for i, r := range set {
		pos[r.Type+"/"+r.ID] = i
	}
	n := 0
	for i, r := range set {
		walk(r.json, r.Type, func(path string, o map[string]any) {
			target, ok := o["reference"].(string)
			if !ok {
				return
			}
			n++
			at, found := pos[target]
			switch {
			case !refPattern.MatchString(target):
				t.Errorf("%s/%s %s: reference %q is not a relative Type/id", r.Type, r.ID, path, target)
			case !found:
				t.Errorf("%s/%s %s: reference %q is not in the set", r.Type, r.ID, path, target)
			case at > i:
				t.Errorf("%s/%s %s: reference %q comes later in load order", r.Type, r.ID, path, target)
			}
		})
		walk(r.json, r.Type, func(path string, o map[string]any) {
			if u, ok := o["url"].(string); ok && strings.HasSuffix(path, ".attachment") {
				if _, found := pos[u]; !found {
					t.Errorf("%s/%s %s: attachment url %q is not in the set", r.Type, r.ID, path, u)
				}
			}
		})
	}
	if n < 1000 {
		t.Errorf("found only %d references; is the walk broken?", n)
	}
}

// patientOf is the patient whose compartment a resource is in, by its
// subject, patient or beneficiary.
func patientOf(r parsed) string {
	if r.Type == "Patient" {
		return r.ID
	}
	for _, k := range []string{"subject", "patient", "beneficiary"} {
		if o, ok := r.json[k].(map[string]any); ok {
			if s, _ := o["reference"].(string); strings.HasPrefix(s, "Patient/") {
				return strings.TrimPrefix(s, "Patient/")
			}
		}
	}
	return ""
}

// codes lists "system|code" of every coding of a CodeableConcept or a
// list of them.
func codes(v any) []string {
	var out []string
	for _, cc := range append(list(v), v) {
		if m, ok := cc.(map[string]any); ok {
			for _, c := range list(m["coding"]) {
				c := c.(map[string]any)
				out = append(out, c["system"].(string)+"|"+c["code"].(string))
			}
		}
	}
	return out
}

const obsCategory = "http://terminology.hl7.org/CodeSystem/observation-category|"

func TestCoverage(t *testing.T) {
	set := decodeSet(t)
	types := map[string]int{}
	has := map[string]map[string]bool{} // patient -> what it has
	for _, r := range set {
		types[r.Type]++
		p := patientOf(r)
		if p == "" {
			continue
		}
		if has[p] == nil {
			has[p] = map[string]bool{}
		}
		has[p][r.Type] = true
		switch r.Type {
		case "Observation":
			for _, c := range codes(r.json["category"]) {
				has[p]["Observation "+strings.TrimPrefix(c, obsCategory)] = true
			}
		case "Condition":
			for _, c := range codes(r.json["category"]) {
				has[p]["Condition "+c[strings.Index(c, "|")+1:]] = true
			}
		}
	}
	for _, typ := range loadOrder {
		if types[typ] == 0 {
			t.Errorf("no %s in the set", typ)
		}
	}
	if len(loadOrder) != 28 || len(types) != len(loadOrder) {
		t.Errorf("set has types %v; want exactly the 28 of loadOrder", types)
	}
	pats := Patients()
	if len(pats) < 5 {
		t.Errorf("Patients() = %v; want at least 5", pats)
	}
	for _, p := range pats {
		for _, want := range []string{"Patient", "Encounter", "Observation vital-signs", "Observation laboratory",
			"Observation social-history", "AllergyIntolerance", "MedicationRequest", "Immunization", "Procedure",
			"DiagnosticReport", "DocumentReference", "CarePlan", "CareTeam", "Goal", "Coverage", "Condition problem-list-item",
			"Condition encounter-diagnosis"} {
			if !has[p][want] {
				t.Errorf("patient %s has no %s", p, want)
			}
		}
	}
	for _, id := range Practitioners() {
		if types["Practitioner"] == 0 || !slices.ContainsFunc(set, func(r parsed) bool { return r.Type == "Practitioner" && r.ID == id }) {
			t.Errorf("Practitioners() lists %s, which is not in the set", id)
		}
	}
	concern := false
	for _, p := range pats {
		concern = concern || has[p]["Condition health-concern"]
	}
	if !concern {
		t.Error("no patient has a health-concern Condition")
	}
}

// TestPatientVariety checks the demographics the demo flows rely on: a
// child, an elderly and a deceased patient, accented and multiple given
// names, several states, and the US Core extensions on everyone.
func TestPatientVariety(t *testing.T) {
	var child, elderly, deceased, accents, multiGiven bool
	states, genders := map[string]bool{}, map[string]bool{}
	for _, r := range decodeSet(t) {
		if r.Type != "Patient" {
			continue
		}
		born, err := time.Parse(time.DateOnly, r.json["birthDate"].(string))
		if err != nil {
			t.Fatalf("Patient/%s: birthDate: %v", r.ID, err)
		}
		age := anchor.Sub(born).Hours() / 24 / 365.25
		child = child || age < 18
		elderly = elderly || age >= 80
		_, dead := r.json["deceasedDateTime"]
		deceased = deceased || dead
		genders[r.json["gender"].(string)] = true
		for _, n := range list(r.json["name"]) {
			n := n.(map[string]any)
			accents = accents || strings.ContainsAny(n["family"].(string)+n["text"].(string), "áéíóúÁÉÍÓÚñçôè")
			multiGiven = multiGiven || len(list(n["given"])) > 1
		}
		for _, a := range list(r.json["address"]) {
			states[a.(map[string]any)["state"].(string)] = true
		}
		exts := map[string]bool{}
		for _, e := range list(r.json["extension"]) {
			exts[e.(map[string]any)["url"].(string)] = true
		}
		for _, want := range []string{"us-core-race", "us-core-ethnicity", "us-core-birthsex"} {
			if !exts[usCore+want] {
				t.Errorf("Patient/%s has no %s extension", r.ID, want)
			}
		}
		for _, id := range list(r.json["identifier"]) {
			if id.(map[string]any)["system"] != sysMRN {
				t.Errorf("Patient/%s: identifier system %v, want %s", r.ID, id.(map[string]any)["system"], sysMRN)
			}
		}
		if list(r.json["telecom"]) == nil || list(r.json["communication"]) == nil {
			t.Errorf("Patient/%s has no telecom or no communication", r.ID)
		}
	}
	for what, ok := range map[string]bool{"a child": child, "an elderly patient": elderly, "a deceased patient": deceased,
		"an accented name": accents, "several given names": multiGiven, "two genders": len(genders) >= 2, "five states": len(states) >= 5} {
		if !ok {
			t.Errorf("no patient gives %s", what)
		}
	}
}

// vitalProfiles is what each US Core vital signs profile fixes: the
// LOINC code and the UCUM code of the value.
var vitalProfiles = map[string]struct{ code, ucum string }{
	"us-core-heart-rate":       {"8867-4", "/min"},
	"us-core-respiratory-rate": {"9279-1", "/min"},
	"us-core-body-temperature": {"8310-5", "Cel"},
	"us-core-pulse-oximetry":   {"59408-5", "%"},
	"us-core-body-weight":      {"29463-7", "kg"},
	"us-core-body-height":      {"8302-2", "cm"},
	"us-core-bmi":              {"39156-5", "kg/m2"},
	"us-core-blood-pressure":   {"85354-9", ""},
}

func TestVitalSignsMatchTheirProfiles(t *testing.T) {
	for _, r := range decodeSet(t) {
		if r.Type != "Observation" {
			continue
		}
		prof := strings.TrimPrefix(list(r.json["meta"].(map[string]any)["profile"])[0].(string), usCore)
		want, ok := vitalProfiles[prof]
		if !ok {
			continue
		}
		if !slices.Contains(codes(r.json["category"]), obsCategory+"vital-signs") {
			t.Errorf("Observation/%s (%s): category is not vital-signs", r.ID, prof)
		}
		if !slices.Contains(codes(r.json["code"]), sysLOINC+"|"+want.code) {
			t.Errorf("Observation/%s (%s): code %v, want LOINC %s", r.ID, prof, codes(r.json["code"]), want.code)
		}
		if prof == "us-core-pulse-oximetry" && !slices.Contains(codes(r.json["code"]), sysLOINC+"|2708-6") {
			t.Errorf("Observation/%s: pulse oximetry without 2708-6", r.ID)
		}
		quantities := []any{r.json["valueQuantity"]}
		if prof == "us-core-blood-pressure" {
			comps := list(r.json["component"])
			if len(comps) != 2 || !slices.Contains(codes(comps[0].(map[string]any)["code"]), sysLOINC+"|8480-6") ||
				!slices.Contains(codes(comps[1].(map[string]any)["code"]), sysLOINC+"|8462-4") {
				t.Errorf("Observation/%s: blood pressure components are not systolic and diastolic", r.ID)
				continue
			}
			quantities = []any{comps[0].(map[string]any)["valueQuantity"], comps[1].(map[string]any)["valueQuantity"]}
			want.ucum = "mm[Hg]"
		}
		for _, q := range quantities {
			q, ok := q.(map[string]any)
			if !ok {
				continue // a dataAbsentReason instead of a value
			}
			if q["system"] != sysUCUM || q["code"] != want.ucum {
				t.Errorf("Observation/%s (%s): unit %v|%v, want %s|%s", r.ID, prof, q["system"], q["code"], sysUCUM, want.ucum)
			}
		}
	}
}

// fhirDateTime is a FHIR date or dateTime; a time needs a zone.
var fhirDateTime = regexp.MustCompile(`^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}))?)?)?$`)

func TestDateTimesHaveZones(t *testing.T) {
	looksLikeDate := regexp.MustCompile(`^\d{4}-\d{2}`)
	for _, r := range decodeSet(t) {
		walk(r.json, r.Type, func(path string, o map[string]any) {
			for k, v := range o {
				s, ok := v.(string)
				if !ok || !looksLikeDate.MatchString(s) {
					continue
				}
				if !fhirDateTime.MatchString(s) {
					t.Errorf("%s/%s %s.%s: %q is not a FHIR date or a dateTime with a zone", r.Type, r.ID, path, k, s)
				}
				// Only dates (a goal's due date, a device's expiry) may lie
				// in the future; nothing has happened after the anchor.
				if ts, err := time.Parse(time.RFC3339, s); err == nil && ts.After(anchor) {
					t.Errorf("%s/%s %s.%s: %s is after the anchor date", r.Type, r.ID, path, k, s)
				}
			}
		})
	}
}

// TestNPIs checks the NPI check digit (US Core us-core-16 and us-core-17:
// Luhn over "80840" and the first nine digits).
func TestNPIs(t *testing.T) {
	n := 0
	for _, r := range decodeSet(t) {
		for _, id := range list(r.json["identifier"]) {
			id := id.(map[string]any)
			if id["system"] != sysNPI {
				continue
			}
			n++
			v := id["value"].(string)
			if !regexp.MustCompile(`^[0-9]{10}$`).MatchString(v) || !luhn("80840"+v) {
				t.Errorf("%s/%s: NPI %q fails the check digit", r.Type, r.ID, v)
			}
		}
	}
	if n < len(Practitioners()) {
		t.Errorf("only %d NPIs; every practitioner needs one", n)
	}
}

func luhn(s string) bool {
	sum := 0
	for i := range len(s) {
		d := int(s[len(s)-1-i] - '0')
		if i%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// TestNotesMatchTheirBinaries checks each clinical note's attachment
// against the Binary it points at.
func TestNotesMatchTheirBinaries(t *testing.T) {
	set := decodeSet(t)
	binaries := map[string]map[string]any{}
	for _, r := range set {
		if r.Type == "Binary" {
			binaries["Binary/"+r.ID] = r.json
		}
	}
	for _, r := range set {
		if r.Type != "DocumentReference" {
			continue
		}
		if !slices.Contains(codes(r.json["category"]), sysUSCoreCS+"us-core-documentreference-category|clinical-note") {
			t.Errorf("DocumentReference/%s: category is not clinical-note", r.ID)
		}
		for _, c := range list(r.json["content"]) {
			a := c.(map[string]any)["attachment"].(map[string]any)
			bin := binaries[a["url"].(string)]
			if bin == nil {
				t.Errorf("DocumentReference/%s: no %v", r.ID, a["url"])
				continue
			}
			data, err := base64.StdEncoding.DecodeString(bin["data"].(string))
			if err != nil {
				t.Errorf("%v: data is not base64: %v", a["url"], err)
				continue
			}
			sum := sha1.Sum(data)
			if a["contentType"] != bin["contentType"] || !strings.HasPrefix(a["contentType"].(string), "text/plain") ||
				a["size"] != float64(len(data)) || a["hash"] != base64.StdEncoding.EncodeToString(sum[:]) {
				t.Errorf("DocumentReference/%s: attachment (type %v, size %v, hash %v) does not describe %v (type %v, %d bytes)",
					r.ID, a["contentType"], a["size"], a["hash"], a["url"], bin["contentType"], len(data))
			}
		}
	}
}

// TestDocListsIDs keeps the package documentation in step with the ids.
func TestDocListsIDs(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range append(Patients(), Practitioners()...) {
		if !bytes.Contains(doc, []byte(id)) {
			t.Errorf("doc.go does not mention %s", id)
		}
	}
}
