package fhir_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// fuzzTypes are the types FuzzSearchParams searches: the first byte of an
// input picks one.
var fuzzTypes = []string{"Observation", "Patient", "Condition", "DocumentReference", "Encounter", "MedicationRequest"}

// FuzzSearchParams sends arbitrary query strings as the search parameters
// of a few types, with GET and with POST _search: the answer is a searchset
// Bundle (200) or an OperationOutcome (400), never a 500 or a panic. One
// fixture (SQLite, demo data) serves the whole run; CI runs the seeds only.
func FuzzSearchParams(f *testing.F) {
	for _, q := range []string{
		"",
		"patient=pat-amy-shaw&category=laboratory",
		"patient=Patient/pat-amy-shaw&category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory&date=ge2024-01-01",
		"code=http://loinc.org|4548-4,http://loinc.org|2339-0&_sort=-date,_id&_count=5",
		"code:not=http://loinc.org|&code:text=glucose",
		"subject:Patient.name=alvarez&value-quantity=gt5.4|http://unitsofmeasure.org|mg/dL",
		"patient.identifier=http://hospital.smarthealthit.org|1000102&_include=Observation:encounter&_revinclude=Provenance:target",
		"date=ap2023-03-15&date=ne2023&date=sa2022-06-01T10:00:00%2B02:00",
		"value-quantity=1e308&value-quantity=-0&value-quantity=NaN&value-quantity=Inf",
		"name=%C3%81lvarez&family:exact=C%C3%B4t%C3%A9&name:contains=%25_%5C",
		"_id=a,b,,c&_lastUpdated=gt2020&_summary=count&_total=accurate",
		"_elements=name,gender&_count=0&_cursor=999999999999&_offset=5",
		"_sort=family,-birthdate,_lastUpdated&birthdate=le1990",
		"identifier=|&identifier=a\\|b\\,c&gender:missing=true",
		"clinical-status=active&category=problem-list-item&onset-date=2020-02-29",
		"location=Binary/bin-amy-shaw-note-3&_profile:below=http://hl7.org/&type:text=note",
		"subject=https://ehr.example.org/fhir/Patient/pat-amy-shaw/_history/1&subject:identifier=x|y",
		"date=2023-13-45&_count=-1&_sort=nope&foo=bar&code:exact=1",
		"patient:Patient.patient.name=x&subject:Nope.name=y&.=.&:=:&_include=*",
		"%zz=%zz&&&=&a=%&b=%2",
		"_format=xml",
		"intent=order&status=active,completed&authoredon=ge2024",
	} {
		for i := range fuzzTypes {
			f.Add(uint8(i), q)
		}
	}
	fx := newFixture(f, "sqlite")
	tok := fx.token("system/*.rs", "", "")
	f.Fuzz(func(t *testing.T, which uint8, query string) {
		typ := fuzzTypes[int(which)%len(fuzzTypes)]
		raw := queryEscape(query)
		for _, post := range []bool{false, true} {
			var req *http.Request
			var err error
			if post {
				req, err = http.NewRequest("POST", fx.base+"/"+typ+"/_search", strings.NewReader(raw))
				if err == nil {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
			} else {
				req, err = http.NewRequest("GET", fx.base+"/"+typ+"?"+raw, nil)
			}
			if err != nil {
				t.Skipf("not a request: %v", err)
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", req.Method, req.URL, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var m map[string]any
			_ = json.Unmarshal(body, &m)
			switch {
			case resp.StatusCode == 200 && m["resourceType"] == "Bundle" && m["type"] == "searchset":
			case resp.StatusCode == 400 && m["resourceType"] == "OperationOutcome":
			case resp.StatusCode == 406 && strings.Contains(query, "_format") && !post:
			default:
				t.Fatalf("%s %s?%s (body %q) = %d, want 200 searchset or 400 OperationOutcome: %.300s", req.Method, typ, raw, raw, resp.StatusCode, body)
			}
		}
	})
}

// queryEscape percent-encodes the bytes a request target cannot carry,
// leaving the rest (including malformed % escapes) for the server to read.
func queryEscape(s string) string {
	var b strings.Builder
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == '#' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
