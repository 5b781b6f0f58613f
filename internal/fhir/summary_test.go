package fhir_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// summaryTrueAccepted says whether the server takes _summary=true. It does
// not yet: searchparse.go (control, case "_summary") and rest.go
// (checkShape) refuse it with 400 before shape runs. When they accept it,
// set this to true and TestSummaryTrue checks the summary form instead.
const summaryTrueAccepted = true

// firstDemo is the first demo resource of typ that has every element in
// has; the test fails when there is none.
func firstDemo(t *testing.T, set []demoRes, typ string, has ...string) demoRes {
	t.Helper()
	for _, d := range ofType(set, typ) {
		if !slices.ContainsFunc(has, func(e string) bool { return d.Body[e] == nil }) {
			return d
		}
	}
	t.Fatalf("no demo %s has all of %v", typ, has)
	return demoRes{}
}

// subsetKeys is what a subsetted copy of the demo resource d must hold: its
// elements that keep selects, and meta (the store writes meta, and the
// SUBSETTED tag goes there).
func subsetKeys(d demoRes, keep ...string) []string {
	out := []string{"meta"}
	for k := range d.Body {
		if k != "meta" && slices.Contains(keep, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// checkSubset checks that res, from a read or a search entry, holds exactly
// want and is tagged SUBSETTED (https://hl7.org/fhir/R4/search.html#summary).
func checkSubset(t *testing.T, what string, res map[string]any, want []string) {
	t.Helper()
	if diff := cmp.Diff(want, mapKeys(res)); diff != "" {
		t.Errorf("%s: elements (-want +got):\n%s", what, diff)
	}
	meta, _ := res["meta"].(map[string]any)
	tags, _ := meta["tag"].([]any)
	if !slices.ContainsFunc(tags, func(tg any) bool {
		m, _ := tg.(map[string]any)
		return m["code"] == "SUBSETTED" && m["system"] == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	}) {
		t.Errorf("%s: meta.tag %v has no SUBSETTED tag", what, tags)
	}
}

// onlyEntry is the resource of the one entry of a search Bundle.
func onlyEntry(t *testing.T, what string, r response) map[string]any {
	t.Helper()
	entries, _ := r.json["entry"].([]any)
	if r.status != http.StatusOK || len(entries) != 1 {
		t.Fatalf("%s: got %d with %d entries, want 200 with one: %.300s", what, r.status, len(entries), r.body)
	}
	res, _ := entries[0].(map[string]any)["resource"].(map[string]any)
	return res
}

// TestSummaryText checks _summary=text on demo resources: "the text, id,
// meta, and only top-level mandatory elements" (FHIR R4 §3.1.1.5.7), on read,
// vread and search alike.
func TestSummaryText(t *testing.T) {
	f := newFixture(t, "sqlite")
	set := demoSet(t)
	sys := f.token("system/*.rs", "", "")
	base := []string{"resourceType", "id", "text"}
	for _, tc := range []struct {
		typ       string
		has       []string // the demo resource must have these, so the check means something
		mandatory []string
	}{
		// Observation: status and code are 1..1; the value and all else go.
		{"Observation", []string{"status", "code", "valueQuantity", "subject", "category"}, []string{"status", "code"}},
		// A mandatory choice element keeps its variant.
		{"MedicationRequest", []string{"status", "intent", "subject", "medicationCodeableConcept", "dosageInstruction"},
			[]string{"status", "intent", "subject", "medicationCodeableConcept"}},
		// A CarePlan with narrative keeps the narrative.
		{"CarePlan", []string{"text", "status", "intent", "subject", "category"}, []string{"status", "intent", "subject"}},
		// Patient has no mandatory element.
		{"Patient", []string{"name", "gender", "birthDate"}, nil},
	} {
		d := firstDemo(t, set, tc.typ, tc.has...)
		want := subsetKeys(d, append(base, tc.mandatory...)...)
		path := "/" + tc.typ + "/" + d.ID
		r := f.do("GET", path+"?_summary=text", sys, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s?_summary=text: got %d, want 200: %.300s", path, r.status, r.body)
		}
		checkSubset(t, "read "+d.key()+" _summary=text", r.json, want)
		for _, e := range tc.mandatory {
			if !cmp.Equal(r.json[e], d.Body[e]) {
				t.Errorf("read %s _summary=text: %s is %v, want %v as stored", d.key(), e, r.json[e], d.Body[e])
			}
		}
		r = f.do("GET", path+"/_history/1?_summary=text", sys, nil)
		checkSubset(t, "vread "+d.key()+" _summary=text", r.json, want)
		res := onlyEntry(t, "search "+d.key()+" _summary=text", f.do("GET", "/"+tc.typ+"?_id="+d.ID+"&_summary=text", sys, nil))
		checkSubset(t, "search "+d.key()+" _summary=text", res, want)
	}
}

// TestSummaryTrue checks _summary=true: while the server refuses it, that
// read and search say so with 400 naming _summary; once it accepts it, that
// the result keeps the R4 summary elements (identifier, name, gender ... of
// a Patient, not photo, contact or communication; the value of an
// Observation, not its category) and implicitRules and modifierExtension.
func TestSummaryTrue(t *testing.T) {
	f := newFixture(t, "sqlite")
	set := demoSet(t)
	sys := f.token("system/*.rs", "", "")
	base := []string{"resourceType", "id", "implicitRules", "modifierExtension"}
	for _, tc := range []struct {
		typ     string
		has     []string
		summary []string // the summary elements the demo resources use
	}{
		{"Patient", []string{"identifier", "name", "gender", "birthDate", "communication"},
			[]string{"identifier", "active", "name", "telecom", "gender", "birthDate", "deceasedBoolean", "deceasedDateTime",
				"address", "managingOrganization", "link"}},
		{"Observation", []string{"status", "code", "valueQuantity", "category"},
			[]string{"identifier", "basedOn", "partOf", "status", "code", "subject", "focus", "encounter",
				"effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued", "performer",
				"valueQuantity", "valueCodeableConcept", "valueString", "hasMember", "derivedFrom", "component"}},
	} {
		d := firstDemo(t, set, tc.typ, tc.has...)
		read := f.do("GET", "/"+tc.typ+"/"+d.ID+"?_summary=true", sys, nil)
		search := f.do("GET", "/"+tc.typ+"?_id="+d.ID+"&_summary=true", sys, nil)
		if !summaryTrueAccepted {
			for what, r := range map[string]response{"read": read, "search": search} {
				if r.status != http.StatusBadRequest || !strings.Contains(r.ooText(), `"_summary"`) {
					t.Errorf("%s %s _summary=true: got %d %.300s, want 400 naming _summary (not supported yet)", what, d.key(), r.status, r.body)
				}
			}
			continue
		}
		want := subsetKeys(d, append(base, tc.summary...)...)
		checkSubset(t, "read "+d.key()+" _summary=true", read.json, want)
		checkSubset(t, "search "+d.key()+" _summary=true", onlyEntry(t, "search "+d.key(), search), want)
	}
}

// TestSummaryElementsParam checks shape through a search with _elements
// (FHIR R4 §3.1.1.5.8): the named top-level elements, a choice element by
// its base name, a name with its type prefix; _elements wins over _summary;
// and _summary=data, which keeps all but text.
func TestSummaryElementsParam(t *testing.T) {
	f := newFixture(t, "sqlite")
	set := demoSet(t)
	sys := f.token("system/*.rs", "", "")
	obs := firstDemo(t, set, "Observation", "status", "code", "valueQuantity", "subject")
	plan := firstDemo(t, set, "CarePlan", "text", "status", "subject")
	planAll := mapKeys(plan.Body)
	for _, tc := range []struct {
		d     demoRes
		query string
		want  []string
	}{
		{obs, "_elements=status,value", subsetKeys(obs, "resourceType", "id", "status", "valueQuantity")},
		{obs, "_elements=Observation.code,%20subject", subsetKeys(obs, "resourceType", "id", "code", "subject")},
		{obs, "_elements=valueQuantity", subsetKeys(obs, "resourceType", "id", "valueQuantity")},
		{obs, "_elements=status&_summary=text", subsetKeys(obs, "resourceType", "id", "status")},
		{plan, "_summary=data", subsetKeys(plan, slices.DeleteFunc(planAll, func(k string) bool { return k == "text" })...)},
	} {
		what := "search " + tc.d.key() + " " + tc.query
		res := onlyEntry(t, what, f.do("GET", "/"+tc.d.Type+"?_id="+tc.d.ID+"&"+tc.query, sys, nil))
		checkSubset(t, what, res, tc.want)
	}
}
