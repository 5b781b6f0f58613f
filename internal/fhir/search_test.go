package fhir_test

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"smartgate/internal/fhir/index"
	"smartgate/internal/fhir/spec"
	"smartgate/internal/store"
)

// Search semantics (FHIR R4 §3.1.1 search.html) against the demo data and
// resources planted with known values. Expected results come from the demo
// data's JSON or from an oracle written from the spec's definitions, never
// from the server's answers.

const (
	loinc  = "http://loinc.org"
	ucum   = "http://unitsofmeasure.org"
	srchQ  = "srch-q" // the planted patient
	labURL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"
)

// planted is one Observation of srch-q with a known date range and value.
type planted struct {
	id     string
	body   string
	lo, hi int64   // the date range [lo, hi) in unix microseconds; hi = MaxInt64 for an open Period; lo = hi = 0: no date
	value  float64 // valueQuantity.value, NaN when none
}

func utc(s string) int64 {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMicro()
		}
	}
	panic("utc: " + s)
}

// searchRange is the range a search date value stands for at its
// precision (R4 §3.1.1.4.2: "the date parameter format implies an interval").
func searchRange(s string) (lo, hi int64) {
	switch len(s) {
	case 4:
		t, _ := time.Parse("2006", s)
		return t.UnixMicro(), t.AddDate(1, 0, 0).UnixMicro()
	case 7:
		t, _ := time.Parse("2006-01", s)
		return t.UnixMicro(), t.AddDate(0, 1, 0).UnixMicro()
	case 10:
		t, _ := time.Parse("2006-01-02", s)
		return t.UnixMicro(), t.AddDate(0, 0, 1).UnixMicro()
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(s)
	}
	return t.UnixMicro(), t.Add(time.Second).UnixMicro()
}

// datePrefix is R4 §3.1.1.4 "prefix" for ranges: s is the search range,
// r the resource's.
func datePrefix(p string, slo, shi, rlo, rhi int64) bool {
	eq := rlo >= slo && rhi <= shi
	switch p {
	case "eq":
		return eq
	case "ne":
		return !eq
	case "gt": // the range above the search value overlaps the target
		return rhi > shi
	case "lt":
		return rlo < slo
	case "ge":
		return rhi > shi || eq
	case "le":
		return rlo < slo || eq
	case "sa": // the target is wholly after the search range
		return rlo >= shi
	case "eb":
		return rhi <= slo
	}
	panic(p)
}

func plantedObservations() []planted {
	obs := func(id, codeJSON, status, effective, value string) string {
		s := `{"resourceType":"Observation","id":"` + id + `","status":"` + status + `",` +
			`"category":[{"coding":[{"system":"` + obsCat + `","code":"laboratory"}]}],` +
			`"code":` + codeJSON + `,"subject":{"reference":"Patient/` + srchQ + `"}`
		if effective != "" {
			s += "," + effective
		}
		if value != "" {
			s += "," + value
		}
		return s + "}"
	}
	lc := func(code, text string) string {
		return `{"coding":[{"system":"` + loinc + `","code":"` + code + `"}],"text":"` + text + `"}`
	}
	q := func(v float64, unit, sys, code string) string {
		s := fmt.Sprintf(`"valueQuantity":{"value":%g,"unit":"%s"`, v, unit)
		if sys != "" {
			s += `,"system":"` + sys + `","code":"` + code + `"`
		}
		return s + "}"
	}
	nan := math.NaN()
	return []planted{
		{id: "s-inst", body: obs("s-inst", lc("1111-1", "Glucose fasting"), "final", `"effectiveDateTime":"2023-03-15T10:00:00Z"`, q(5.4, "mg/dL", ucum, "mg/dL")),
			lo: utc("2023-03-15T10:00:00Z"), hi: utc("2023-03-15T10:00:01Z"), value: 5.4},
		{id: "s-day", body: obs("s-day", lc("1111-1", "Fasting glucose"), "amended", `"effectiveDateTime":"2023-03-16"`, q(5.5, "mg/dL", ucum, "mg/dL")),
			lo: utc("2023-03-16"), hi: utc("2023-03-17"), value: 5.5},
		{id: "s-month", body: obs("s-month", lc("2222-2", "Systolic pressure"), "final", `"effectiveDateTime":"2023-04"`, q(120, "mmHg", ucum, "mm[Hg]")),
			lo: utc("2023-04"), hi: utc("2023-05"), value: 120},
		{id: "s-year", body: obs("s-year", `{"coding":[{"code":"nosys-1"}],"text":"Local code"}`, "preliminary", `"effectiveDateTime":"2022"`, q(100, "mg/dL", "", "")),
			lo: utc("2022"), hi: utc("2023"), value: 100},
		{id: "s-period", body: obs("s-period", lc("3333-3", "Potassium"), "final", `"effectivePeriod":{"start":"2023-01-01","end":"2023-06-30"}`, q(0.5, "mmol/L", ucum, "mmol/L")),
			lo: utc("2023-01-01"), hi: utc("2023-07-01"), value: 0.5},
		{id: "s-open", body: obs("s-open", lc("4444-4", "Culture"), "final", `"effectivePeriod":{"start":"2023-05-01T00:00:00Z"}`, `"valueString":"positive"`),
			lo: utc("2023-05-01T00:00:00Z"), hi: math.MaxInt64, value: nan},
		{id: "s-nodate", body: obs("s-nodate", lc("4444-4", "Culture"), "cancelled", "",
			`"valueString":"negative","performer":[{"identifier":{"system":"urn:test:npi","value":"NPI-9"},"display":"Dr. Nobody"}]`), value: nan},
	}
}

const srchPatient = `{"resourceType":"Patient","id":"` + srchQ + `","gender":"other","birthDate":"1990-01-01",` +
	`"identifier":[{"system":"urn:test:search","value":"Q-1"}],"name":[{"family":"Ångström","given":["Zoë"]}]}`

// plantSearch stores srch-q and its Observations with their own ids.
func plantSearch(t *testing.T, f *fixture) []planted {
	t.Helper()
	sys := f.token("system/*.cruds", "", "")
	if r := f.do("PUT", "/Patient/"+srchQ, sys, srchPatient); r.status != 201 {
		t.Fatalf("PUT Patient/%s = %d %s", srchQ, r.status, r.body)
	}
	ps := plantedObservations()
	for _, p := range ps {
		if r := f.do("PUT", "/Observation/"+p.id, sys, p.body); r.status != 201 {
			t.Fatalf("PUT Observation/%s = %d %s", p.id, r.status, r.body)
		}
	}
	return ps
}

// searchCase is one query (a type and its parameters) and the exact set of
// resources it must match.
type searchCase struct {
	query string
	want  []string
}

// checkSearch runs every case with a system token: 200, exactly the wanted
// matches, and total equal to them.
func checkSearch(t *testing.T, f *fixture, cases []searchCase) {
	t.Helper()
	tok := f.token("system/*.rs", "", "")
	for _, c := range cases {
		r := f.do("GET", "/"+c.query+sep(c.query)+"_count=1000", tok, nil)
		if r.status != 200 {
			t.Errorf("GET %s = %d %.300s", c.query, r.status, r.body)
			continue
		}
		got := r.ids("match")
		want := slices.Clone(c.want)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("GET %s: %d matches, want %d; unexpected %v, missing %v", c.query, len(got), len(want), minus(got, want), minus(want, got))
		}
		if total, _ := r.json["total"].(float64); int(total) != len(got) {
			t.Errorf("GET %s: total %v, %d entries", c.query, r.json["total"], len(got))
		}
	}
}

func sep(q string) string {
	if strings.Contains(q, "?") {
		return "&"
	}
	return "?"
}

func refKeys(typ string, ids ...string) []string {
	out := []string{}
	for _, id := range ids {
		out = append(out, typ+"/"+id)
	}
	return out
}

// demoWhere lists Type/id of the demo resources of typ that satisfy keep.
func demoWhere(set []demoRes, typ string, keep func(demoRes) bool) []string {
	out := []string{}
	for _, r := range ofType(set, typ) {
		if keep(r) {
			out = append(out, r.key())
		}
	}
	return out
}

func subjectIs(patient string) func(demoRes) bool {
	return func(r demoRes) bool { return refField(r.Body, "subject") == "Patient/"+patient }
}

func hasProfile(keep func(string) bool) func(demoRes) bool {
	return func(r demoRes) bool {
		meta, _ := r.Body["meta"].(map[string]any)
		ps, _ := meta["profile"].([]any)
		for _, p := range ps {
			if s, _ := p.(string); keep(s) {
				return true
			}
		}
		return false
	}
}

func TestSearchSemantics(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		f := newFixture(t, backend)
		set := demoSet(t)
		ps := plantSearch(t, f)
		obs := func(ids ...string) []string { return refKeys("Observation", ids...) }
		pats := func(ids ...string) []string { return refKeys("Patient", ids...) }
		mine := "Observation?patient=" + srchQ + "&"
		allPats := demoWhere(set, "Patient", func(demoRes) bool { return true })

		t.Run("token", func(t *testing.T) {
			checkSearch(t, f, []searchCase{
				{mine + "code=1111-1", obs("s-inst", "s-day")},
				{mine + "code=" + loinc + "|1111-1", obs("s-inst", "s-day")},
				{mine + "code=http://snomed.info/sct|1111-1", obs()},
				{mine + "code=|nosys-1", obs("s-year")},
				{mine + "code=|1111-1", obs()},
				{mine + "code=" + loinc + "|", obs("s-inst", "s-day", "s-month", "s-period", "s-open", "s-nodate")},
				{mine + "code:not=" + loinc + "|1111-1", obs("s-month", "s-year", "s-period", "s-open", "s-nodate")},
				{mine + "code:not=1111-1,4444-4", obs("s-month", "s-year", "s-period")},
				{mine + "code:text=glucose", obs("s-inst", "s-day")},
				{mine + "code:text=FAST", obs("s-inst", "s-day")},
				{mine + "code:text=pressure", obs("s-month")},
				{mine + "code:text=ressure", obs()},
				{mine + "status=amended,preliminary", obs("s-day", "s-year")},
				{"Patient?gender=female", pats(amy, "pat-eleanor-brooks", lily, "pat-renee-cote")},
				{"Patient?gender:not=female", pats(jose, "pat-walter-obrien", srchQ)},
				{"Patient?identifier=http://hospital.smarthealthit.org|1000101", pats(amy)},
				{"Patient?identifier=1000102", pats(jose)},
				{"Patient?identifier=http://hospital.smarthealthit.org|", demoWhere(set, "Patient", func(demoRes) bool { return true })},
				{"Patient?identifier=|1000101", pats()},
				{"Patient?identifier=urn:test:search|Q-1", pats(srchQ)},
			})
		})

		t.Run("string", func(t *testing.T) {
			checkSearch(t, f, []searchCase{
				{"Patient?name=alva", pats(jose)},
				{"Patient?name=ALVAREZ", pats(jose)},
				{"Patient?name=Álvarez", pats(jose)},
				{"Patient?name=josé", pats(jose)},
				{"Patient?family=cote", pats("pat-renee-cote")},
				{"Patient?given=zoe", pats(srchQ)},
				{"Patient?name=angstrom", pats(srchQ)},
				{"Patient?name=whit", pats("pat-eleanor-brooks")}, // her maiden name
				{"Patient?name=varez", pats()},                    // default is a prefix match
				{"Patient?family:exact=Côté", pats("pat-renee-cote")},
				{"Patient?family:exact=cote", pats()},
				{"Patient?family:exact=côté", pats()},
				{"Patient?family:exact=Côt", pats()},
				{"Patient?name:contains=varez", pats(jose)},
				{"Patient?name:contains=BRIE", pats("pat-walter-obrien")},
				{"Patient?family:contains=ngstr", pats(srchQ)},
				{"Patient?family=shaw,chen", pats(amy, lily)},
				{"Patient?name=eleanor&name=whitfield", pats("pat-eleanor-brooks")},
				{"Patient?name=amy&name=brooks", pats()},
				{"Patient?address-city=austin", pats(jose)},
			})
		})

		t.Run("reference", func(t *testing.T) {
			amyObs := demoWhere(set, "Observation", subjectIs(amy))
			joseObs := demoWhere(set, "Observation", subjectIs(jose))
			checkSearch(t, f, []searchCase{
				{"Observation?subject=Patient/" + amy, amyObs},
				{"Observation?subject=" + amy, amyObs},
				{"Observation?subject=" + issuer + "/fhir/Patient/" + amy, amyObs},
				{"Observation?patient=" + issuer + "/fhir/Patient/" + amy, amyObs},
				{"Observation?subject:Patient=" + amy, amyObs},
				{"Observation?subject:Group=" + amy, obs()},
				{"Observation?subject=https://other.example.org/fhir/Patient/" + amy, obs()},
				{"Observation?subject=Patient/" + amy + ",Patient/" + jose, append(slices.Clone(amyObs), joseObs...)},
				{"Observation?subject:Patient.name=alvarez", joseObs},
				{"Observation?patient.family=Álvarez", joseObs},
				{"Observation?patient.identifier=http://hospital.smarthealthit.org|1000102", joseObs},
				{"Observation?patient.gender=other", obs("s-inst", "s-day", "s-month", "s-year", "s-period", "s-open", "s-nodate")},
				{"Observation?performer:identifier=urn:test:npi|NPI-9", obs("s-nodate")},
				{"Observation?performer:identifier=NPI-9", obs("s-nodate")},
				{"Observation?performer:identifier=urn:other|NPI-9", obs()},
			})
		})

		t.Run("date", func(t *testing.T) {
			var cases []searchCase
			for _, v := range []string{"2023", "2023-03", "2023-03-15", "2023-03-16", "2022-06", "2023-05-01", "2023-03-15T10:00:00Z", "2023-07", "2023-04-30", "2023-06", "2022-12-31", "2023-01-01"} {
				slo, shi := searchRange(v)
				for _, p := range []string{"eq", "ne", "lt", "gt", "le", "ge", "sa", "eb"} {
					want := obs()
					for _, o := range ps {
						if o.hi != 0 && datePrefix(p, slo, shi, o.lo, o.hi) {
							want = append(want, "Observation/"+o.id)
						}
					}
					cases = append(cases, searchCase{mine + "date=" + p + url.QueryEscape(v), want})
					if p == "eq" {
						cases = append(cases, searchCase{mine + "date=" + url.QueryEscape(v), want}) // eq is the default
					}
				}
			}
			// AND of two dates; OR of two.
			and := obs()
			or := obs()
			for _, o := range ps {
				alo, ahi := searchRange("2023-01-01")
				blo, bhi := searchRange("2023-04-01")
				if o.hi != 0 && datePrefix("ge", alo, ahi, o.lo, o.hi) && datePrefix("lt", blo, bhi, o.lo, o.hi) {
					and = append(and, "Observation/"+o.id)
				}
				clo, chi := searchRange("2022")
				dlo, dhi := searchRange("2023-04")
				if o.hi != 0 && (datePrefix("eq", clo, chi, o.lo, o.hi) || datePrefix("eq", dlo, dhi, o.lo, o.hi)) {
					or = append(or, "Observation/"+o.id)
				}
			}
			cases = append(cases,
				searchCase{mine + "date=ge2023-01-01&date=lt2023-04-01", and},
				searchCase{mine + "date=2022,2023-04", or},
				searchCase{mine + "date=ap1950", obs()},
				searchCase{mine + "date:missing=true", obs("s-nodate")},
				searchCase{mine + "date:missing=false", obs("s-inst", "s-day", "s-month", "s-year", "s-period", "s-open")},
			)
			checkSearch(t, f, cases)
			// ap: at least the value itself.
			r := f.do("GET", "/"+mine+"date=ap2023-03-15", f.token("system/*.rs", "", ""), nil)
			if !slices.Contains(r.ids("match"), "Observation/s-inst") || slices.Contains(r.ids("match"), "Observation/s-nodate") {
				t.Errorf("date=ap2023-03-15: %d %v", r.status, r.ids("match"))
			}
		})

		t.Run("quantity", func(t *testing.T) {
			checkSearch(t, f, []searchCase{
				{mine + "value-quantity=5.4", obs("s-inst")},
				{mine + "value-quantity=5", obs("s-inst")}, // 5 stands for [4.5, 5.5)
				{mine + "value-quantity=5.40", obs("s-inst")},
				{mine + "value-quantity=1e2", obs("s-year")},
				{mine + "value-quantity=5.4|" + ucum + "|mg/dL", obs("s-inst")},
				{mine + "value-quantity=5.4||mg/dL", obs("s-inst")},
				{mine + "value-quantity=5.4|" + ucum + "|mmol/L", obs()},
				{mine + "value-quantity=100||mg/dL", obs("s-year")}, // matches the unit when there is no code
				{mine + "value-quantity=gt5.4", obs("s-day", "s-month", "s-year")},
				{mine + "value-quantity=ge5.4", obs("s-inst", "s-day", "s-month", "s-year")},
				{mine + "value-quantity=lt5.5", obs("s-inst", "s-period")},
				{mine + "value-quantity=le5.5", obs("s-inst", "s-day", "s-period")},
				{mine + "value-quantity=ne5.4", obs("s-day", "s-month", "s-year", "s-period")},
				{mine + "value-quantity=gt5||mg/dL", obs("s-inst", "s-day", "s-year")},
				{mine + "value-quantity=sa100", obs("s-month")},
				{mine + "value-quantity=eb1", obs("s-period")},
				{mine + "value-quantity=ap5.4", obs("s-inst", "s-day")},
				{mine + "value-quantity=0.5,120", obs("s-period", "s-month")},
				{mine + "value-quantity=gt1&value-quantity=lt110", obs("s-inst", "s-day", "s-year")},
				{mine + "value-quantity:missing=true", obs("s-open", "s-nodate")},
			})
		})

		t.Run("uri", func(t *testing.T) {
			lab := demoWhere(set, "Observation", hasProfile(func(p string) bool { return p == labURL }))
			usCore := demoWhere(set, "Observation", hasProfile(func(p string) bool {
				return strings.HasPrefix(p, "http://hl7.org/fhir/us/core/StructureDefinition/")
			}))
			if len(lab) == 0 || len(usCore) <= len(lab) {
				t.Fatalf("demo profiles: %d lab, %d US Core", len(lab), len(usCore))
			}
			checkSearch(t, f, []searchCase{
				{"Observation?_profile=" + labURL, lab},
				{"Observation?_profile=http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation", obs()},
				{"Observation?_profile:below=http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation", lab},
				{"Observation?_profile:below=http://hl7.org/fhir/us/core/StructureDefinition/", usCore},
				{"Observation?_profile:above=" + labURL + "/extra", lab},
				{"Observation?_profile:above=http://hl7.org/fhir/us/core/", obs()},
				{"DocumentReference?location=Binary/bin-amy-shaw-note-3", refKeys("DocumentReference", "docref-amy-shaw-note-3")},
			})
		})

		t.Run("missing id lastUpdated", func(t *testing.T) {
			sys := f.token("system/*.rs", "", "")
			first := f.do("GET", "/Observation/s-inst", sys, nil)
			last := f.do("GET", "/Observation/s-nodate", sys, nil)
			lu := func(r response) string { return r.json["meta"].(map[string]any)["lastUpdated"].(string) }
			all := demoWhere(set, "Observation", func(demoRes) bool { return true })
			var plantedIDs []string
			for _, p := range ps {
				plantedIDs = append(plantedIDs, "Observation/"+p.id)
			}
			checkSearch(t, f, []searchCase{
				{"Patient?death-date:missing=false", pats("pat-walter-obrien")},
				{"Patient?death-date:missing=true", minus(append(slices.Clone(allPats), "Patient/"+srchQ), pats("pat-walter-obrien"))},
				{"Patient?_id=" + amy + "," + lily, pats(amy, lily)},
				{"Patient?_id=nobody", pats()},
				{"Observation?_lastUpdated=ge" + url.QueryEscape(lu(first)), plantedIDs},
				{"Observation?_lastUpdated=lt" + url.QueryEscape(lu(first)), all},
				{"Observation?_lastUpdated=" + url.QueryEscape(lu(first)), obs("s-inst")},
				{"Observation?_lastUpdated=gt" + url.QueryEscape(lu(last)), obs()},
				{"Observation?_lastUpdated=ge2000-01-01&_id=s-inst,s-day", obs("s-inst", "s-day")},
			})
		})

		t.Run("summary elements", func(t *testing.T) {
			sys := f.token("system/*.rs", "", "")
			r := f.do("GET", "/Observation?patient="+jose+"&_summary=count", sys, nil)
			want := len(demoWhere(set, "Observation", subjectIs(jose)))
			if r.status != 200 || r.json["total"] != float64(want) || r.json["entry"] != nil {
				t.Errorf("_summary=count: %d total %v entries %v, want total %d and no entries", r.status, r.json["total"], len(r.ids("")), want)
			}
			r = f.do("GET", "/Patient?_id="+amy+"&_elements=name,gender", sys, nil)
			entries, _ := r.json["entry"].([]any)
			if r.status != 200 || len(entries) != 1 {
				t.Fatalf("_elements: %d %.200s", r.status, r.body)
			}
			res := entries[0].(map[string]any)["resource"].(map[string]any)
			meta, _ := res["meta"].(map[string]any)
			tags, _ := meta["tag"].([]any)
			subsetted := false
			for _, tg := range tags {
				if m, _ := tg.(map[string]any); m["code"] == "SUBSETTED" && m["system"] == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue" {
					subsetted = true
				}
			}
			if res["name"] == nil || res["gender"] == nil || res["birthDate"] != nil || res["address"] != nil || res["id"] != amy || !subsetted {
				t.Errorf("_elements=name,gender kept %v, SUBSETTED tag %v", mapKeys(res), subsetted)
			}
			if !strings.Contains(r.link("self"), "_elements=name%2Cgender") {
				t.Errorf("_elements missing from the self link %s", r.link("self"))
			}
			r = f.do("GET", "/Patient?_id="+amy, sys, nil)
			if strings.Contains(string(r.body), "SUBSETTED") {
				t.Errorf("a search without _elements marks resources SUBSETTED")
			}
		})

		t.Run("POST _search", func(t *testing.T) {
			sys := f.token("system/*.rs", "", "")
			for _, q := range []string{
				"patient=" + amy + "&category=laboratory",
				"subject:Patient.name=alvarez&date=ge2024-01-01",
				"code=" + loinc + "|1111-1,|nosys-1&_count=1",
				"patient=" + jose + "&_sort=-date,_id&_count=5",
			} {
				get := f.do("GET", "/Observation?"+q, sys, nil)
				post := f.do("POST", "/Observation/_search", sys, q, "Content-Type", "application/x-www-form-urlencoded")
				if get.status != 200 || post.status != 200 || !slices.Equal(get.ids("match"), post.ids("match")) || get.json["total"] != post.json["total"] || len(get.ids("match")) == 0 {
					t.Errorf("%s: GET %d %v (total %v); POST _search %d %v (total %v)", q, get.status, get.ids("match"), get.json["total"], post.status, post.ids("match"), post.json["total"])
				}
				if get.link("self") != post.link("self") || get.link("next") != post.link("next") {
					t.Errorf("%s: links differ: GET %s %s; POST %s %s", q, get.link("self"), get.link("next"), post.link("self"), post.link("next"))
				}
			}
			// A part in the URL and a part in the body are both applied.
			r := f.do("POST", "/Observation/_search?patient="+srchQ, sys, "code=1111-1", "Content-Type", "application/x-www-form-urlencoded")
			got := r.ids("match")
			slices.Sort(got)
			if !slices.Equal(got, obs("s-day", "s-inst")) {
				t.Errorf("POST _search with query and body: %d %v", r.status, got)
			}
			if r := f.do("POST", "/Observation/_search", sys, `{"patient":"x"}`); r.status != http.StatusUnsupportedMediaType {
				t.Errorf("POST _search with a JSON body = %d, want 415", r.status)
			}
		})

		t.Run("unknown and malformed parameters", func(t *testing.T) {
			sys := f.token("system/*.rs", "", "")
			r := f.do("GET", "/Patient?gender=female&foo=bar&_foo=1&foo.bar:baz=x", sys, nil)
			self := r.link("self")
			if r.status != 200 || len(r.ids("match")) != 4 || strings.Contains(self, "foo") || !strings.Contains(self, "gender=female") {
				t.Errorf("unknown parameters: %d, %d matches, self %s", r.status, len(r.ids("match")), self)
			}
			r = f.do("GET", "/Patient?gender=female&foo=bar", sys, nil, "Prefer", "handling=strict")
			if r.status != 400 || !strings.Contains(r.ooText(), `"foo"`) {
				t.Errorf("unknown parameter under Prefer: handling=strict = %d %s", r.status, r.body)
			}
			if r := f.do("GET", "/Patient?gender=female", sys, nil, "Prefer", "handling=strict"); r.status != 200 || len(r.ids("match")) != 4 {
				t.Errorf("known parameters under Prefer: handling=strict = %d", r.status)
			}
			for _, c := range []struct{ query, param string }{
				{"Observation?date=2023-13-45", "date"},
				{"Observation?date=xx2023", "date"},
				{"Observation?date=2023-02-30", "date"},
				{"Observation?date:exact=2023", "date:exact"},
				{"Observation?code:exact=1111-1", "code:exact"},
				{"Observation?code:contains=1111", "code:contains"},
				{"Observation?value-quantity=abc", "value-quantity"},
				{"Observation?value-quantity=5.4|mg", "value-quantity"},
				{"Observation?value-quantity=gtx", "value-quantity"},
				{"Observation?value-quantity:below=5", "value-quantity:below"},
				{"Observation?_count=-1", "_count"},
				{"Observation?_count=ten", "_count"},
				{"Observation?_sort=nope", "_sort"},
				{"Observation?_sort=-value-string,nope", "_sort"},
				{"Observation?_summary=maybe", "_summary"},
				{"Observation?_total=all", "_total"},
				{"Observation?subject=Organization/x", "subject"},
				{"Observation?subject:Encounter=x", "subject:Encounter"},
				{"Observation?subject:Patient.nope=x", "subject:Patient.nope"},
				{"Observation?code.text=x", "code.text"},
				{"Observation?date:missing=maybe", "date:missing"},
				{"Patient?name:below=x", "name:below"},
				{"Patient?birthdate=1990-01-01T25:00:00Z", "birthdate"},
				{"Observation?_lastUpdated=yesterday", "_lastUpdated"},
				{"Observation?_cursor=abc", "_cursor"},
			} {
				r := f.do("GET", "/"+c.query, sys, nil)
				issues, _ := r.json["issue"].([]any)
				code := ""
				if len(issues) > 0 {
					code, _ = issues[0].(map[string]any)["code"].(string)
				}
				if r.status != 400 || code != "invalid" || !strings.Contains(r.ooText(), `"`+c.param+`"`) {
					t.Errorf("GET %s = %d (issue code %q), want 400 invalid naming %q: %.300s", c.query, r.status, code, c.param, r.body)
				}
			}
			// Many parameters of many values each: each occurrence is within
			// its own limits, but together they compare more values than
			// one search may. 9,000 codes took about 20 s of SQLite's time
			// (and past 32,766 bound values a statement fails: a 500).
			var many strings.Builder
			for i := range 90 {
				many.WriteString("&code=")
				for j := range 100 {
					if j > 0 {
						many.WriteByte(',')
					}
					fmt.Fprintf(&many, "%d-%d", i, j)
				}
			}
			if r := f.do("GET", "/Observation?_count=1"+many.String(), sys, nil); r.status != 400 || !strings.Contains(r.ooText(), "at most 1000 values") || !strings.Contains(r.ooText(), `"code"`) {
				t.Errorf("GET with 9,000 code values = %d, want 400 naming the limit and the parameter: %.300s", r.status, r.body)
			}
			if r := f.do("GET", "/Observation?_count=1"+many.String()[:strings.Index(many.String()[1:], "&code")+1], sys, nil); r.status != 200 {
				t.Errorf("GET with 100 code values = %d, want 200: %.300s", r.status, r.body)
			}
			// Strict handling refuses an unusable _include; lenient drops it.
			if r := f.do("GET", "/Observation?_id=s-inst&_include=Observation:nope", sys, nil); r.status != 200 || strings.Contains(r.link("self"), "nope") {
				t.Errorf("bad _include (lenient) = %d self %s", r.status, r.link("self"))
			}
			if r := f.do("GET", "/Observation?_id=s-inst&_include=Observation:nope", sys, nil, "Prefer", "handling=strict"); r.status != 400 || !strings.Contains(r.ooText(), "_include") {
				t.Errorf("bad _include (strict) = %d %s", r.status, r.body)
			}
		})
	})
}

func mapKeys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestSearchPaging follows next links to the end: no duplicates, no gaps,
// also when resources are inserted between pages, with and without _sort,
// and with sort keys some resources lack (they come last).
func TestSearchPaging(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		f := newFixture(t, backend)
		plantSearch(t, f)
		sys := f.token("system/*.cruds", "", "")
		inserted := 0
		for _, c := range []struct {
			base, page string // the search and its paging parameters
			insert     bool   // insert, after the second page, a resource that sorts before everything seen
		}{
			{base: "Observation?patient=" + jose, page: "_count=7"},
			{base: "Observation?patient=" + jose, page: "_count=7", insert: true},
			{base: "Observation?patient=" + jose, page: "_count=7&_sort=_id"},
			{base: "Observation?patient=" + jose, page: "_count=7&_sort=_id", insert: true},
			{base: "Observation?patient=" + jose, page: "_count=6&_sort=-date,_id", insert: true},
			{base: "Observation?patient=" + jose, page: "_count=5&_sort=code,-_lastUpdated"},
			{base: "Observation?patient=" + srchQ, page: "_count=2&_sort=date"},
			{base: "Observation?patient=" + srchQ, page: "_count=2&_sort=-date"},
			{base: "Observation?patient=" + srchQ, page: "_count=1&_sort=value-quantity"},
			{base: "Observation?patient=" + srchQ, page: "_count=2&_sort=-value-quantity,-_id"},
			{base: "Observation?patient=" + srchQ, page: "_count=3&_sort=status,-date"},
			{base: "Patient?_lastUpdated=gt2000", page: "_count=2&_sort=family"},
			{base: "Patient?_lastUpdated=gt2000", page: "_count=2&_sort=-given,birthdate"},
			{base: "Patient?_lastUpdated=gt2000", page: "_count=1&_sort=death-date"},
		} {
			name := c.base + "&" + c.page
			if c.insert {
				name += " (insert)"
			}
			t.Run(name, func(t *testing.T) {
				sortParam := ""
				if i := strings.Index(c.page, "_sort="); i >= 0 {
					sortParam = "&" + c.page[i:]
				}
				single := f.do("GET", "/"+c.base+"&_count=1000"+sortParam, sys, nil)
				before := single.ids("match")
				seen := map[string]int{}
				var order []string
				next := "/" + c.base + "&" + c.page
				pages := 0
				for next != "" {
					r := f.do("GET", next, sys, nil)
					if r.status != 200 {
						t.Fatalf("GET %s = %d %s", next, r.status, r.body)
					}
					pages++
					if total, _ := r.json["total"].(float64); pages <= 2 && int(total) != len(before) {
						t.Errorf("page %d: total %v, want %d", pages, r.json["total"], len(before))
					}
					for _, id := range r.ids("match") {
						seen[id]++
						order = append(order, id)
					}
					if pages == 2 && c.insert {
						inserted++
						id := fmt.Sprintf("a-paging-%d", inserted) // before every demo id ("obs-...")
						body := withID(strings.Replace(obsJSON(jose), "2024-05-01T10:00:00Z", "2099-01-01T00:00:00Z", 1), id)
						if r := f.do("PUT", "/Observation/"+id, sys, body); r.status != 201 {
							t.Fatalf("insert: %d %s", r.status, r.body)
						}
					}
					next = ""
					if u := r.link("next"); u != "" {
						if !strings.HasPrefix(u, issuer+"/fhir/") || !strings.Contains(u, "_cursor=") {
							t.Fatalf("next link %s", u)
						}
						next = strings.TrimPrefix(u, issuer+"/fhir")
					}
					if pages > 300 {
						t.Fatal("paging does not end")
					}
				}
				for _, id := range before {
					if seen[id] != 1 {
						t.Errorf("%s seen %d times", id, seen[id])
					}
				}
				for id, n := range seen {
					if n > 1 {
						t.Errorf("%s returned %d times", id, n)
					}
				}
				if len(before) > 3 && pages < 2 {
					t.Errorf("%d pages for %d resources", pages, len(before))
				}
				// Without an insertion, the pages joined are the single page.
				if !c.insert && !slices.Equal(before, order) {
					t.Errorf("paged order differs from the single page:\npaged  %v\nsingle %v", order, before)
				}
			})
		}
	})
}

// TestSearchSort: multi-key and descending _sort on planted resources.
func TestSearchSort(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		f := newFixture(t, backend)
		sys := f.token("system/*.cruds", "", "")
		at := map[string]string{"srt-c": "2024-01-03T00:00:00Z", "srt-b": "2024-01-01T00:00:00Z", "srt-a": "2024-01-01T00:00:00Z", "srt-d": "2024-01-02T00:00:00Z"}
		for id, d := range at {
			body := withID(strings.Replace(obsJSON(lily), "2024-05-01T10:00:00Z", d, 1), id)
			if r := f.do("PUT", "/Observation/"+id, sys, body); r.status != 201 {
				t.Fatalf("PUT %s = %d %s", id, r.status, r.body)
			}
		}
		for _, c := range []struct {
			sort string
			want []string
		}{
			{"-date,_id", []string{"srt-c", "srt-d", "srt-a", "srt-b"}},
			{"date,-_id", []string{"srt-b", "srt-a", "srt-d", "srt-c"}},
			{"_id", []string{"srt-a", "srt-b", "srt-c", "srt-d"}},
			{"-_id", []string{"srt-d", "srt-c", "srt-b", "srt-a"}},
		} {
			r := f.do("GET", "/Observation?_id=srt-a,srt-b,srt-c,srt-d&_sort="+c.sort, sys, nil)
			if got := r.ids("match"); !slices.Equal(got, refKeys("Observation", c.want...)) {
				t.Errorf("_sort=%s: %d %v, want %v", c.sort, r.status, got, c.want)
			}
			if !strings.Contains(r.link("self"), "_sort="+url.QueryEscape(c.sort)) {
				t.Errorf("_sort=%s missing from the self link %s", c.sort, r.link("self"))
			}
		}
		// Strings sort by their normalized form: Álvarez first, Shaw last.
		r := f.do("GET", "/Patient?_sort=family,_id&_id=pat-amy-shaw,pat-jose-alvarez,pat-eleanor-brooks,pat-lily-chen,pat-renee-cote,pat-walter-obrien", sys, nil)
		want := refKeys("Patient", jose, "pat-eleanor-brooks", lily, "pat-renee-cote", "pat-walter-obrien", amy)
		if got := r.ids("match"); !slices.Equal(got, want) {
			t.Errorf("_sort=family: %v, want %v", got, want)
		}
	})
}

// TestUSCoreSearches: every US Core 6.1.0 SHALL search parameter and SHALL
// combination (spec.USCore) finds the demo resources it should, with values
// taken from a demo resource that has them. The expected set is every demo
// resource of the type whose index rows satisfy all the values, evaluated
// here over index.Extract's rows (so the check is the search engine's, not
// the indexer's).
func TestUSCoreSearches(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		f := newFixture(t, backend)
		set := demoSet(t)
		base := issuer + "/fhir"
		checked := 0
		for _, typ := range spec.Types() {
			us, ok := spec.USCore(typ)
			if !ok {
				continue
			}
			var combos [][]string
			for p, e := range us.Params {
				if e == "SHALL" {
					combos = append(combos, []string{p})
				}
			}
			for _, c := range us.Combinations {
				if c.Expectation == "SHALL" {
					combos = append(combos, c.Params)
				}
			}
			slices.SortFunc(combos, func(a, b []string) int { return strings.Compare(strings.Join(a, ","), strings.Join(b, ",")) })
			demos := ofType(set, typ)
			ixs := make([]store.Index, len(demos))
			for i, d := range demos {
				ix, err := index.Extract(typ, d.Raw, base)
				if err != nil {
					t.Fatalf("index.Extract(%s): %v", d.key(), err)
				}
				ixs[i] = ix
			}
			for _, combo := range combos {
				name := typ + "?" + strings.Join(combo, "&")
				// The first demo resource with a value for every parameter.
				var q url.Values
				for i, d := range demos {
					if v, ok := usCoreValues(typ, combo, d, ixs[i]); ok {
						q = v
						break
					}
				}
				if q == nil {
					t.Errorf("%s (US Core SHALL): no demo %s has values for every parameter; the demo data cannot exercise it", name, typ)
					continue
				}
				var want []string
				for i, d := range demos {
					if usCoreMatches(typ, q, d, ixs[i]) {
						want = append(want, d.key())
					}
				}
				checkSearch(t, f, []searchCase{{typ + "?" + q.Encode(), want}})
				if len(want) == 0 {
					t.Errorf("%s: the oracle matched nothing for %s", name, q.Encode())
				}
				checked++
			}
		}
		t.Logf("%d US Core SHALL searches checked", checked)
		if checked < 30 {
			t.Errorf("only %d US Core SHALL searches checked", checked)
		}
	})
}

// usCoreValues builds a query value for each parameter from one resource.
func usCoreValues(typ string, params []string, d demoRes, ix store.Index) (url.Values, bool) {
	q := url.Values{}
	for _, code := range params {
		if code == "_id" {
			q.Set("_id", d.ID)
			continue
		}
		p, ok := spec.Lookup(typ, code)
		if !ok {
			return nil, false
		}
		switch p.Type {
		case spec.Token:
			for _, r := range ix.Tokens {
				if r.Param == code && r.Code != "" {
					if r.System != "" {
						q.Set(code, r.System+"|"+r.Code)
					} else {
						q.Set(code, r.Code)
					}
					break
				}
			}
		case spec.String:
			for _, r := range ix.Strings {
				if r.Param == code && r.Norm != "" {
					q.Set(code, r.Exact)
					break
				}
			}
		case spec.Reference:
			for _, r := range ix.Refs {
				if r.Param == code && r.Type != "" {
					q.Set(code, r.Type+"/"+r.ID)
					break
				}
			}
		case spec.Date:
			for _, r := range ix.Dates {
				if r.Param == code && r.Low > math.MinInt64 {
					q.Set(code, "ge"+time.UnixMicro(r.Low).UTC().Format("2006-01-02"))
					break
				}
			}
		}
		if q.Get(code) == "" {
			return nil, false
		}
	}
	return q, true
}

// usCoreMatches evaluates q over a resource's index rows, by R4's rules.
func usCoreMatches(typ string, q url.Values, d demoRes, ix store.Index) bool {
	for code, vs := range q {
		v := vs[0]
		if code == "_id" {
			if d.ID != v {
				return false
			}
			continue
		}
		p, _ := spec.Lookup(typ, code)
		ok := false
		switch p.Type {
		case spec.Token:
			sys, c, hasBar := strings.Cut(v, "|")
			if !hasBar {
				sys, c = "", v
			}
			for _, r := range ix.Tokens {
				ok = ok || r.Param == code && r.Code == c && (!hasBar || r.System == sys)
			}
		case spec.String:
			for _, r := range ix.Strings {
				ok = ok || r.Param == code && strings.HasPrefix(r.Norm, index.Normalize(v))
			}
		case spec.Reference:
			for _, r := range ix.Refs {
				ok = ok || r.Param == code && r.Type+"/"+r.ID == v
			}
		case spec.Date:
			slo, shi := searchRange(strings.TrimPrefix(v, "ge"))
			for _, r := range ix.Dates {
				ok = ok || r.Param == code && datePrefix("ge", slo, shi, r.Low, r.High)
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
