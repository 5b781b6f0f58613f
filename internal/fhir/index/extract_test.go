package index

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"smartgate/internal/fhir/index/fhirpath"
	"smartgate/internal/fhir/spec"
	"smartgate/internal/store"
)

const base = "http://127.0.0.1:8080/fhir"

// lines renders an Index one row a line, so that expectations stay
// readable: dates as UTC instants (-inf and +inf for open ends), strings
// and texts quoted.
func lines(x store.Index) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	for _, r := range x.Tokens {
		s := fmt.Sprintf("token %s %s|%s", r.Param, r.System, r.Code)
		if r.Text != "" {
			s += " " + strconv.Quote(r.Text)
		}
		out = append(out, s)
	}
	for _, r := range x.Strings {
		add("string %s %q %q", r.Param, r.Norm, r.Exact)
	}
	for _, r := range x.Refs {
		s := "ref " + r.Param
		if r.Type != "" || r.ID != "" {
			s += " " + r.Type + "/" + r.ID
		}
		if r.URL != "" {
			s += " url=" + r.URL
		}
		if r.IdentSystem != "" || r.IdentValue != "" {
			s += " ident=" + r.IdentSystem + "|" + r.IdentValue
		}
		out = append(out, s)
	}
	for _, r := range x.Dates {
		add("date %s %s %s", r.Param, instant(r.Low), instant(r.High))
	}
	for _, r := range x.Quantities {
		add("quantity %s %s %s|%s unit=%s", r.Param, strconv.FormatFloat(r.Value, 'g', -1, 64), r.System, r.Code, r.Unit)
	}
	for _, r := range x.Numbers {
		add("number %s %s", r.Param, strconv.FormatFloat(r.Value, 'g', -1, 64))
	}
	for _, r := range x.URIs {
		add("uri %s %s", r.Param, r.Value)
	}
	for _, p := range x.Patients {
		add("patient %s", p)
	}
	for _, l := range x.Links {
		add("link %s/%s %s", l.Type, l.ID, l.Patient)
	}
	return out
}

func instant(us int64) string {
	switch us {
	case math.MinInt64:
		return "-inf"
	case math.MaxInt64:
		return "+inf"
	}
	return time.UnixMicro(us).UTC().Format("2006-01-02T15:04:05.999999Z")
}

// rows splits a want block into sorted lines.
func rows(block string) []string {
	var out []string
	for _, l := range strings.Split(block, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

var extractTests = []struct {
	file, typ string
	want      string
}{
	{"patient.json", "Patient", `
		uri _profile http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient|6.1.0
		uri _profile http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient
		token _tag http://example.org/tags|demo "demo data"
		token active |true
		string address "49 meadow st" "49 Meadow St"
		string address "mounds" "Mounds"
		string address "ok" "OK"
		string address "74047" "74047"
		string address "us" "US"
		string address-city "mounds" "Mounds"
		string address-country "us" "US"
		string address-postalcode "74047" "74047"
		string address-state "ok" "OK"
		token address-use |home
		date birthdate 1987-02-20T00:00:00Z 1987-02-21T00:00:00Z
		token deceased |false
		token email email|amy.shaw@example.com
		token ethnicity |2135-2
		string family "shaw" "Shaw"
		string family "baxter" "Baxter"
		token gender |female
		token gender-identity |446141000124107
		ref general-practitioner Practitioner/practitioner-1
		string given "amy" "Amy"
		string given "v." "V."
		token identifier http://hospital.smarthealthit.org|1032702 "medical record number"
		token language urn:ietf:bcp:47|en-US
		token language | "english"
		ref link Patient/other-1
		string name "shaw" "Shaw"
		string name "amy" "Amy"
		string name "v." "V."
		string name "phd" "PhD"
		string name "amy renee baxter" "Amy  Renée Baxter"
		string name "baxter" "Baxter"
		ref organization Organization/org-1
		token phone phone|555-555-5555
		string phonetic "shaw" "Shaw"
		string phonetic "amy" "Amy"
		string phonetic "v." "V."
		string phonetic "phd" "PhD"
		string phonetic "amy renee baxter" "Amy  Renée Baxter"
		string phonetic "baxter" "Baxter"
		token race |2106-3
		token race |1586-7
		token telecom phone|555-555-5555
		token telecom email|amy.shaw@example.com
		patient example`},
	{"observation-lab.json", "Observation", `
		uri _profile http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab
		token category http://terminology.hl7.org/CodeSystem/observation-category|laboratory "laboratory"
		token category | "laboratory"
		token code http://loinc.org|2345-7 "glucose [mass/volume] in serum or plasma"
		token code | "glucose"
		token combo-code http://loinc.org|2345-7 "glucose [mass/volume] in serum or plasma"
		token combo-code | "glucose"
		quantity combo-value-quantity 6.3 http://unitsofmeasure.org|mmol/L unit=mmol/L
		date date 2024-03-04T15:15:00Z 2024-03-04T15:15:01Z
		ref encounter Encounter/enc-1
		ref patient Patient/example
		ref performer Organization/org-1
		ref specimen Specimen/spec-1
		token status |final
		ref subject Patient/example
		quantity value-quantity 6.3 http://unitsofmeasure.org|mmol/L unit=mmol/L
		patient example`},
	{"observation-bp.json", "Observation", `
		uri _profile http://hl7.org/fhir/us/core/StructureDefinition/us-core-blood-pressure
		token category http://terminology.hl7.org/CodeSystem/observation-category|vital-signs
		token code http://loinc.org|85354-9 "blood pressure panel with all children optional"
		token combo-code http://loinc.org|85354-9 "blood pressure panel with all children optional"
		token combo-code http://loinc.org|8480-6 "systolic blood pressure"
		token combo-code http://loinc.org|8462-4 "diastolic blood pressure"
		quantity combo-value-quantity 107 http://unitsofmeasure.org|mm[Hg] unit=mmHg
		quantity combo-value-quantity 60 http://unitsofmeasure.org|mm[Hg] unit=mmHg
		token component-code http://loinc.org|8480-6 "systolic blood pressure"
		token component-code http://loinc.org|8462-4 "diastolic blood pressure"
		quantity component-value-quantity 107 http://unitsofmeasure.org|mm[Hg] unit=mmHg
		quantity component-value-quantity 60 http://unitsofmeasure.org|mm[Hg] unit=mmHg
		date date 2024-03-05T08:00:00Z 2024-03-05T08:05:01Z
		ref patient Patient/example
		ref performer Patient/example
		ref performer PractitionerRole/role-1
		token status |final
		ref subject Patient/example
		patient example`},
	{"condition.json", "Condition", `
		date asserted-date 2016-08-10T00:00:00Z 2016-08-11T00:00:00Z
		ref asserter Practitioner/practitioner-1
		token category http://terminology.hl7.org/CodeSystem/condition-category|problem-list-item "problem list item"
		token category http://hl7.org/fhir/us/core/CodeSystem/us-core-category|health-concern
		token clinical-status http://terminology.hl7.org/CodeSystem/condition-clinical|active
		token code http://snomed.info/sct|442311008 "liveborn born in hospital"
		token code | "single liveborn, born in hospital"
		ref encounter Encounter/enc-1
		date onset-date 2016-08-01T00:00:00Z +inf
		ref patient Patient/example
		date recorded-date 2016-08-10T15:15:07Z 2016-08-10T15:15:08Z
		ref subject Patient/example
		token verification-status http://terminology.hl7.org/CodeSystem/condition-ver-status|confirmed
		patient example`},
	{"encounter.json", "Encounter", `
		token class http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB "ambulatory"
		date date 2024-03-04T14:00:00Z 2024-03-04T15:30:01Z
		token discharge-disposition http://terminology.hl7.org/CodeSystem/discharge-disposition|home "home"
		token identifier http://hospital.example.org/encounters|E-1001
		quantity length 90 http://unitsofmeasure.org|min unit=min
		ref location Location/loc-1
		date location-period 2024-03-04T14:00:00Z +inf
		ref participant Practitioner/practitioner-1
		token participant-type http://terminology.hl7.org/CodeSystem/v3-ParticipationType|ATND
		ref patient Patient/example
		ref practitioner Practitioner/practitioner-1
		ref service-provider Organization/org-1
		token status |finished
		ref subject Patient/example
		token type http://www.ama-assn.org/go/cpt|99201 "office or other outpatient visit"
		token type | "office visit"
		patient example`},
	{"medicationrequest.json", "MedicationRequest", `
		date authoredon 2024-03-04T00:00:00Z 2024-03-05T00:00:00Z
		token category http://terminology.hl7.org/CodeSystem/medicationrequest-category|community
		token code http://www.nlm.nih.gov/research/umls/rxnorm|582620 "nizatidine 15 mg/ml oral solution [axid]"
		date date 2024-03-05T08:00:00Z 2024-03-05T08:00:01Z
		ref encounter Encounter/enc-1
		ref intended-dispenser Organization/pharmacy-1
		token intent |order
		ref patient Patient/example
		ref requester Practitioner/practitioner-1
		token status |active
		ref subject Patient/example
		patient example`},
	// The contained Medication is not indexed, and "#med1" names no resource.
	{"medicationrequest-contained.json", "MedicationRequest", `
		token intent |order
		ref patient Patient/example
		token status |active
		ref subject Patient/example
		patient example`},
	{"documentreference.json", "DocumentReference", `
		ref author Practitioner/practitioner-1
		token category http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category|clinical-note "clinical note"
		token contenttype |text/plain
		token contenttype |application/pdf
		ref custodian Organization/org-1
		date date 2024-03-04T12:00:00Z 2024-03-04T12:00:01Z
		ref encounter Encounter/enc-1
		token format http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode|urn:ihe:iti:xds:2017:mimeTypeSufficient
		token identifier urn:ietf:rfc:3986|urn:oid:2.16.840.1.113883.19.5.99999.1
		uri location Binary/bin-1
		uri location http://127.0.0.1:8080/fhir/Binary/bin-2
		uri location https://elsewhere.example.org/fhir/Binary/bin-3
		ref patient Patient/example
		date period 2024-03-04T14:00:00Z 2024-03-04T15:30:01Z
		token status |current
		ref subject Patient/example
		token type http://loinc.org|34133-9 "summary of episode note"
		patient example
		link Binary/bin-1 example
		link Binary/bin-2 example`},
	{"provenance.json", "Provenance", `
		ref agent Practitioner/practitioner-1
		token agent-type http://terminology.hl7.org/CodeSystem/provenance-participant-type|author
		ref entity DocumentReference/ ident=http://example.org/docs|D-7
		ref patient Patient/example
		date recorded 2024-03-04T12:00:00.5Z 2024-03-04T12:00:00.6Z
		ref target Observation/lab-1
		ref target Patient/example
		ref target url=urn:uuid:1f1b4a7e-3a62-4b4a-9a4e-2d2b2f0f6a11
		patient example`},
	{"careteam.json", "CareTeam", `
		date date -inf 2025-01-02T00:00:00Z
		ref participant Patient/example
		ref participant Practitioner/practitioner-1
		ref participant RelatedPerson/rp-1
		ref participant Patient/sibling-2
		ref patient Patient/example
		token role http://snomed.info/sct|116154003 "patient"
		token role http://nucc.org/provider-taxonomy|207Q00000X "family medicine physician"
		token role | "caregiver"
		token status |active
		ref subject Patient/example
		patient example
		patient sibling-2`},
	{"group.json", "Group", `
		token actual |true
		token characteristic | "has diabetes"
		token code | "diabetes cohort"
		token exclude |false
		ref managing-entity Organization/org-1
		ref member Patient/example
		ref member Patient/p2
		ref member Device/dev-1
		token type |person
		token value |true
		patient example
		patient p2`},
	{"device.json", "Device", `
		string device-name "cardiac pacemaker" "Cardiac Pacemaker"
		string device-name "implantable cardiac pacemaker" "Implantable cardiac pacemaker"
		string manufacturer "acme devices, inc" "Acme Devices, Inc"
		string model "ab-1" "AB-1"
		ref patient Patient/example
		token status |active
		token type http://snomed.info/sct|706004007 "implantable cardiac pacemaker"
		string udi-carrier "(01)09504000059118(17)141120(10)7654321d(21)10987654d321" "(01)09504000059118(17)141120(10)7654321D(21)10987654d321"
		string udi-di "09504000059118" "09504000059118"
		patient example`},
	{"questionnaireresponse.json", "QuestionnaireResponse", `
		ref author Patient/example
		date authored 2024-03-04T11:00:00Z 2024-03-04T11:00:01Z
		ref patient Patient/example
		ref questionnaire url=http://example.org/Questionnaire/phq-9|1.0
		ref questionnaire url=http://example.org/Questionnaire/phq-9
		token status |completed
		ref subject Patient/example
		patient example`},
	{"binary.json", "Binary", `
		token _security http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R
		uri _source http://example.org/source#1
		patient example`},
}

func TestExtract(t *testing.T) {
	for _, tt := range extractTests {
		t.Run(tt.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			idx, err := Extract(tt.typ, body, base)
			if err != nil {
				t.Fatalf("Extract(%s): %v", tt.file, err)
			}
			got := lines(idx)
			slices.Sort(got)
			if diff := cmp.Diff(rows(tt.want), got); diff != "" {
				t.Errorf("Extract(%s) rows (-want +got):\n%s", tt.file, diff)
			}
			// A base with a trailing slash means the same.
			again, err := Extract(tt.typ, body, base+"/")
			if err != nil || !cmp.Equal(idx, again) {
				t.Errorf("Extract(%s, base with a trailing slash): differs from without (err %v)", tt.file, err)
			}
		})
	}
}

// TestExtractValues checks the structures themselves, with the instants
// computed independently of DateRange.
func TestExtractValues(t *testing.T) {
	body := []byte(`{"resourceType": "Observation", "id": "o", "status": "final",
		"code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}, {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
		"subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2021-06-01T08:30:00+02:00",
		"valueQuantity": {"value": 44, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"}}`)
	got, err := Extract("Observation", body, base)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2021, 6, 1, 6, 30, 0, 0, time.UTC).UnixMicro()
	hr := store.TokenIndex{Param: "code", System: "http://loinc.org", Code: "8867-4", Text: "heart rate"}
	want := store.Index{
		Tokens: []store.TokenIndex{
			hr,
			{Param: "combo-code", System: "http://loinc.org", Code: "8867-4", Text: "heart rate"},
			{Param: "status", Code: "final"},
		},
		Refs:  []store.RefIndex{{Param: "patient", Type: "Patient", ID: "p1"}, {Param: "subject", Type: "Patient", ID: "p1"}},
		Dates: []store.DateIndex{{Param: "date", Low: at, High: at + 1_000_000}},
		Quantities: []store.QuantityIndex{
			{Param: "combo-value-quantity", Value: 44, System: "http://unitsofmeasure.org", Code: "/min", Unit: "beats/minute"},
			{Param: "value-quantity", Value: 44, System: "http://unitsofmeasure.org", Code: "/min", Unit: "beats/minute"},
		},
		Patients: []string{"p1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Extract (-want +got):\n%s", diff)
	}
}

// TestExtractShapes covers value shapes the fixtures do not: Money, Range,
// Timing, references by identifier and to other servers, numbers.
func TestExtractShapes(t *testing.T) {
	tests := []struct {
		typ, body, want string
	}{
		{"Condition", `{"resourceType": "Condition", "onsetRange": {"low": {"value": 10, "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"}, "high": {"value": 20, "unit": "a"}},
			"abatementAge": {"value": 30, "code": "a"}, "abatementString": "in remission", "subject": {"reference": "https://other.example.org/fhir/Patient/p9"}}`, `
			quantity onset-age 10 http://unitsofmeasure.org|a unit=a
			quantity onset-age 20 | unit=a
			quantity abatement-age 30 |a unit=
			string abatement-string "in remission" "in remission"
			ref subject url=https://other.example.org/fhir/Patient/p9
			ref patient url=https://other.example.org/fhir/Patient/p9`},
		{"Coverage", `{"resourceType": "Coverage", "beneficiary": {"type": "Patient", "identifier": {"system": "urn:mrn", "value": "7"}},
			"payor": [{"reference": "Patient/self"}], "class": [{"type": {"coding": [{"code": "group"}]}, "value": "CB135"}], "dependent": "01"}`, `
			ref beneficiary Patient/ ident=urn:mrn|7
			ref patient Patient/ ident=urn:mrn|7
			ref payor Patient/self
			token class-type |group
			string class-value "cb135" "CB135"
			string dependent "01" "01"
			patient self`},
		{"CarePlan", `{"resourceType": "CarePlan", "subject": {"reference": "Patient/p1"},
			"activity": [{"detail": {"scheduledTiming": {"event": ["2020-01-01", "2020-01-02"], "repeat": {"boundsPeriod": {"start": "2020-02-01", "end": "not a date"}}}}},
			             {"detail": {"scheduledPeriod": {"end": "2021"}}}, {"detail": {"scheduledString": "daily"}}]}`, `
			date activity-date 2020-01-01T00:00:00Z 2020-01-02T00:00:00Z
			date activity-date 2020-01-02T00:00:00Z 2020-01-03T00:00:00Z
			date activity-date -inf 2022-01-01T00:00:00Z
			ref patient Patient/p1
			ref subject Patient/p1
			patient p1`},
		{"Patient", `{"resourceType": "Patient", "id": "dead", "deceasedBoolean": true, "link": [{"other": {"reference": "Patient/x"}}]}`, `
			token deceased |true
			ref link Patient/x
			patient dead`},
		{"Patient", `{"resourceType": "Patient", "deceasedDateTime": "2020-02-29T23:59:59.999999999Z"}`, `
			token deceased |true
			date death-date 2020-02-29T23:59:59.999999Z 2020-03-01T00:00:00Z`},
		// Not a Patient the Binary is for: no compartment.
		{"Binary", `{"resourceType": "Binary", "securityContext": {"reference": "DocumentReference/d1"}}`, ``},
		// A DocumentReference about no patient links its Binary to no one.
		{"DocumentReference", `{"resourceType": "DocumentReference", "subject": {"reference": "Group/g"}, "content": [{"attachment": {"url": "Binary/b"}}]}`, `
			ref subject Group/g
			uri location Binary/b`},
		{"Specimen", `{"resourceType": "Specimen", "subject": {"reference": "Patient/p1/_history/4"}, "accessionIdentifier": {"system": "urn:acc", "value": "A1"},
			"collection": {"collectedDateTime": "2020-05"}}`, `
			ref subject Patient/p1
			ref patient Patient/p1
			token accession urn:acc|A1
			date collected 2020-05-01T00:00:00Z 2020-06-01T00:00:00Z
			patient p1`},
		{"ServiceRequest", `{"resourceType": "ServiceRequest", "instantiatesCanonical": ["http://example.org/PlanDefinition/pd|2"],
			"instantiatesUri": ["http://example.org/protocol|3"], "orderDetail": [{"text": "Fasting"}], "performer": [{"reference": "#p"}],
			"subject": {"reference": "Group/g"}, "requisition": {"system": "urn:req", "value": "R-1"}}`, `
			ref instantiates-canonical url=http://example.org/PlanDefinition/pd|2
			ref instantiates-canonical url=http://example.org/PlanDefinition/pd
			uri instantiates-uri http://example.org/protocol|3
			uri instantiates-uri http://example.org/protocol
			token order-detail |Fasting
			token requisition urn:req|R-1
			ref subject Group/g`},
	}
	for _, tt := range tests {
		got, err := Extract(tt.typ, []byte(tt.body), base)
		if err != nil {
			t.Errorf("Extract(%s): %v", tt.body, err)
			continue
		}
		gl := lines(got)
		slices.Sort(gl)
		if diff := cmp.Diff(rows(tt.want), gl); diff != "" {
			t.Errorf("Extract(%s) rows (-want +got):\n%s", tt.body, diff)
		}
	}
}

func TestExtractErrors(t *testing.T) {
	tests := []struct {
		typ, body string
		want      error
	}{
		{"Person", `{"resourceType": "Person"}`, ErrUnsupported},
		{"Bundle", `{"resourceType": "Bundle"}`, ErrUnsupported},
		{"Patient", `{"resourceType": "Observation"}`, ErrMalformed},
		{"Patient", `{}`, ErrMalformed},
		{"Patient", `[]`, ErrMalformed},
		{"Patient", `null`, ErrMalformed},
		{"Patient", `{"resourceType": "Patient"`, ErrMalformed},
		{"Patient", `{"resourceType": "Patient"} {}`, ErrMalformed},
		{"Patient", ``, ErrMalformed},
	}
	for _, tt := range tests {
		if _, err := Extract(tt.typ, []byte(tt.body), base); !errors.Is(err, tt.want) {
			t.Errorf("Extract(%s, %s): got %v, want %v", tt.typ, tt.body, err, tt.want)
		}
	}
}

func TestSplitReference(t *testing.T) {
	tests := []struct {
		ref, base string
		typ, id   string
		ok        bool
	}{
		{"Patient/123", base, "Patient", "123", true},
		{"Patient/123/_history/2", base, "Patient", "123", true},
		{base + "/Binary/a.b-c", base, "Binary", "a.b-c", true},
		{base + "/Binary/a/_history/1", base + "/", "Binary", "a", true},
		{"https://elsewhere.example.org/fhir/Patient/1", base, "", "", false},
		{base + "x/Patient/1", base, "", "", false},
		{"urn:uuid:1f1b4a7e-3a62-4b4a-9a4e-2d2b2f0f6a11", base, "", "", false},
		{"#contained", base, "", "", false},
		{"Patient", base, "", "", false},
		{"Patient/", base, "", "", false},
		{"patient/1", base, "", "", false},
		{"Patient/1/_history/", base, "", "", false},
		{"Patient/1/extra", base, "", "", false},
		{"Patient?identifier=x", base, "", "", false},
		{"Patient/" + strings.Repeat("a", 65), base, "", "", false},
		{"Patient/a_b", base, "", "", false},
		{"Patient/1", "", "Patient", "1", true},
	}
	for _, tt := range tests {
		typ, id, ok := SplitReference(tt.ref, tt.base)
		if typ != tt.typ || id != tt.id || ok != tt.ok {
			t.Errorf("SplitReference(%q, %q): got %q, %q, %v; want %q, %q, %v", tt.ref, tt.base, typ, id, ok, tt.typ, tt.id, tt.ok)
		}
	}
}

// TestExpressionsParse: every expression of every supported type, and
// every component expression, is inside the FHIRPath subset.
func TestExpressionsParse(t *testing.T) {
	n := 0
	for _, typ := range spec.Types() {
		for _, p := range spec.Params(typ) {
			exprs := []string{p.Expression}
			for _, c := range p.Components {
				exprs = append(exprs, c.Expression)
			}
			for _, e := range exprs {
				if e == "" {
					t.Errorf("%s %s: empty expression", typ, p.Code)
				} else if _, err := fhirpath.Parse(e); err != nil {
					t.Errorf("%s %s: %v", typ, p.Code, err)
				}
				n++
			}
		}
	}
	if n < 600 {
		t.Errorf("parsed %d expressions, want the 628 of the supported types", n)
	}
}

func TestIndexed(t *testing.T) {
	var skipped []string
	for _, typ := range spec.Types() {
		for _, p := range spec.Params(typ) {
			if !Indexed(typ, p.Code) {
				skipped = append(skipped, typ+"."+p.Code)
			}
		}
	}
	var want []string
	for _, typ := range spec.Types() {
		want = append(want, typ+"._id", typ+"._lastUpdated")
	}
	want = append(want, "DocumentReference.relationship", "Group.characteristic-value", "Location.near",
		"Observation.code-value-concept", "Observation.code-value-date", "Observation.code-value-quantity",
		"Observation.code-value-string", "Observation.combo-code-value-concept", "Observation.combo-code-value-quantity",
		"Observation.component-code-value-concept", "Observation.component-code-value-quantity")
	slices.Sort(want)
	slices.Sort(skipped)
	if diff := cmp.Diff(want, skipped); diff != "" {
		t.Errorf("parameters not indexed (-want +got):\n%s", diff)
	}
	if Indexed("Patient", "nope") || Indexed("Person", "name") {
		t.Errorf("Indexed: got true for a parameter that does not exist")
	}
}

func FuzzExtract(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	f.Add([]byte(`{"resourceType": "Observation", "valueQuantity": [1, "x", {"value": "1"}], "subject": 7, "effectivePeriod": {"start": 5}}`))
	types := spec.Types()
	f.Fuzz(func(t *testing.T, body []byte) {
		typ := "Observation"
		if res, err := decode(body); err == nil {
			if rt, ok := res["resourceType"].(string); ok && slices.Contains(types, rt) {
				typ = rt
			}
		}
		idx, err := Extract(typ, body, base)
		if err != nil {
			return
		}
		for _, d := range idx.Dates {
			if d.Low >= d.High {
				t.Errorf("date row %+v: empty range", d)
			}
		}
	})
}

func BenchmarkExtract(b *testing.B) {
	body, err := os.ReadFile(filepath.Join("testdata", "observation-lab.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Extract("Observation", body, base); err != nil {
			b.Fatal(err)
		}
	}
}

// TestExtractDetachesStrings: the rows' strings are one block of their
// own, laid out in eachString's order, so that they do not keep the
// decoded body alive (see detach).
func TestExtractDetachesStrings(t *testing.T) {
	for _, tt := range extractTests {
		body, err := os.ReadFile(filepath.Join("testdata", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		idx, err := Extract(tt.typ, body, base)
		if err != nil {
			t.Fatal(err)
		}
		var next uintptr
		n := 0
		eachString(&idx, func(s *string) {
			if *s == "" {
				return
			}
			p := uintptr(unsafe.Pointer(unsafe.StringData(*s)))
			if n > 0 && p != next {
				t.Errorf("%s: %q is not where the previous row string ended", tt.file, *s)
			}
			next = p + uintptr(len(*s))
			n++
		})
		if n == 0 {
			t.Errorf("%s: no row strings", tt.file)
		}
	}
}
