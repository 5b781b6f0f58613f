package validate

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid.golden from the current diagnostics")

// validFiles are realistic resources, US Core style, that must pass.
func validFiles(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "valid", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no files in testdata/valid: %v", err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

func TestValidFiles(t *testing.T) {
	for name, body := range validFiles(t) {
		var head struct{ ResourceType string }
		if err := json.Unmarshal(body, &head); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rt, issues := Resource(body)
		if rt != head.ResourceType || issues != nil {
			t.Errorf("Resource(%s): got %q and issues %v, want %q and none", name, rt, issues, head.ResourceType)
		}
	}
}

// TestValidSmall covers valid shapes the files do not: primitive arrays with
// nulls lined up with "_name", a "_name" without its value, escapes.
func TestValidSmall(t *testing.T) {
	for _, body := range []string{
		`{"resourceType":"Patient","name":[{"given":[null,"B"],"_given":[{"id":"g1"},null]}]}`,
		`{"resourceType":"Patient","_gender":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}}`,
		`{"resourceType":"Observation","_status":{"id":"s"},"code":{"text":"x"}}`,
		`{"resourceType":"Patient","gen\u0064er":"female","name":[{"text":"\ud83d\ude00 \u00e9"}]}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"_valueString":{"id":"v"}}`,
		`{"resourceType":"Patient","id":"` + strings.Repeat("a", 64) + `"}`,
		`{"resourceType":"Basic","code":{"text":"x"},"extension":[{"url":"http://example.org/x","valueMeta":{"versionId":"1"}}]}`,
		`{"resourceType":"Binary","contentType":"text/plain","data":"aGVsbG8="}`,
		` {"resourceType":"Patient"} ` + "\n",
		// fullUrl is a uri, not a uuid: its pattern only forbids whitespace.
		`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:NOT-A-UUID"}]}`,
	} {
		if rt, issues := Resource([]byte(body)); rt == "" || issues != nil {
			t.Errorf("Resource(%s): got %q and issues %v, want none", body, rt, issues)
		}
	}
}

// at is the part of an issue the table pins: its code and location.
type at struct{ Code, Expression string }

var invalidCases = []struct {
	name string
	body string
	rt   string
	want []at
}{
	{"unknown element at root", `{"resourceType":"Patient","gender2":"female"}`, "Patient",
		[]at{{"structure", "Patient.gender2"}}},
	{"unknown element deep", `{"resourceType":"Patient","name":[{"family":"S"},{"given":["A"],"givne":["B"]}]}`, "Patient",
		[]at{{"structure", "Patient.name[1].givne"}}},
	{"unknown element in a data type", `{"resourceType":"Observation","status":"final","code":{"coding":[{"sytem":"http://loinc.org"}]}}`, "Observation",
		[]at{{"structure", "Observation.code.coding[0].sytem"}}},
	{"fhir_comments", `{"resourceType":"Patient","fhir_comments":["x"]}`, "Patient",
		[]at{{"structure", "Patient.fhir_comments"}}},
	{"resourceType below the root", `{"resourceType":"Patient","name":[{"resourceType":"HumanName"}]}`, "Patient",
		[]at{{"structure", "Patient.name[0].resourceType"}}},
	{"wrong choice variant", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueFoo":1}`, "Observation",
		[]at{{"structure", "Observation.valueFoo"}}},
	{"two choice variants", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1},"valueString":"1"}`, "Observation",
		[]at{{"invalid", "Observation.valueString"}}},
	{"choice variant and another variant's extension", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1},"_valueString":{"id":"a"}}`, "Observation",
		[]at{{"invalid", "Observation.valueString"}}},
	{"repeated member", `{"resourceType":"Patient","gender":"male","gender":"female"}`, "Patient",
		[]at{{"structure", "Patient.gender"}}},
	{"repeated resourceType", `{"resourceType":"Patient","resourceType":"Patient"}`, "Patient",
		[]at{{"structure", "Patient.resourceType"}}},
	{"max 1 given as array", `{"resourceType":"Patient","gender":["female"]}`, "Patient",
		[]at{{"structure", "Patient.gender"}}},
	{"max 1 object given as array", `{"resourceType":"Patient","maritalStatus":[{"text":"M"}]}`, "Patient",
		[]at{{"structure", "Patient.maritalStatus"}}},
	{"max * given as scalar", `{"resourceType":"Patient","name":{"family":"Shaw"}}`, "Patient",
		[]at{{"structure", "Patient.name"}}},
	{"max * primitive given as scalar", `{"resourceType":"Patient","name":[{"given":"Amy"}]}`, "Patient",
		[]at{{"structure", "Patient.name[0].given"}}},
	{"empty array", `{"resourceType":"Patient","name":[]}`, "Patient",
		[]at{{"structure", "Patient.name"}}},
	{"empty object", `{"resourceType":"Patient","maritalStatus":{}}`, "Patient",
		[]at{{"structure", "Patient.maritalStatus"}}},
	{"empty object in array", `{"resourceType":"Patient","name":[{"family":"S"},{}]}`, "Patient",
		[]at{{"structure", "Patient.name[1]"}}},
	{"empty string", `{"resourceType":"Patient","gender":""}`, "Patient",
		[]at{{"value", "Patient.gender"}}},
	{"whitespace-only string", `{"resourceType":"Patient","name":[{"family":" \t "}]}`, "Patient",
		[]at{{"value", "Patient.name[0].family"}}},
	{"code with trailing space", `{"resourceType":"Patient","gender":"female "}`, "Patient",
		[]at{{"value", "Patient.gender"}}},
	{"null scalar", `{"resourceType":"Patient","gender":null}`, "Patient",
		[]at{{"structure", "Patient.gender"}}},
	{"null in array of objects", `{"resourceType":"Patient","name":[null]}`, "Patient",
		[]at{{"structure", "Patient.name[0]"}}},
	{"null in primitive array without _given", `{"resourceType":"Patient","name":[{"given":["A",null]}]}`, "Patient",
		[]at{{"structure", "Patient.name[0].given[1]"}}},
	{"null on both sides", `{"resourceType":"Patient","name":[{"given":["A",null],"_given":[null,null]}]}`, "Patient",
		[]at{{"structure", "Patient.name[0].given[1]"}, {"structure", "Patient.name[0].given[1]"}}},
	{"_given shorter than given", `{"resourceType":"Patient","name":[{"given":["A","B"],"_given":[{"id":"x"}]}]}`, "Patient",
		[]at{{"structure", "Patient.name[0].given"}}},
	{"_given not an array", `{"resourceType":"Patient","name":[{"given":["A"],"_given":{"id":"x"}}]}`, "Patient",
		[]at{{"structure", "Patient.name[0].given"}}},
	{"_gender as array", `{"resourceType":"Patient","gender":"male","_gender":[{"id":"x"}]}`, "Patient",
		[]at{{"structure", "Patient.gender"}}},
	{"_gender empty", `{"resourceType":"Patient","gender":"male","_gender":{}}`, "Patient",
		[]at{{"structure", "Patient.gender"}}},
	{"_birthDate extension without url", `{"resourceType":"Patient","birthDate":"1970","_birthDate":{"extension":[{"valueDateTime":"1970-01-01T08:00:00Z"}]}}`, "Patient",
		[]at{{"required", "Patient.birthDate.extension[0].url"}}},
	{"_birthDate with unknown member", `{"resourceType":"Patient","birthDate":"1970","_birthDate":{"value":"1970"}}`, "Patient",
		[]at{{"structure", "Patient.birthDate.value"}}},
	{"_name beside a complex element", `{"resourceType":"Patient","_maritalStatus":{"id":"x"}}`, "Patient",
		[]at{{"structure", "Patient._maritalStatus"}}},
	{"_div on xhtml", `{"resourceType":"Patient","text":{"status":"generated","div":"<div>x</div>","_div":{"id":"d"}}}`, "Patient",
		[]at{{"structure", "Patient.text._div"}}},
	{"missing required", `{"resourceType":"Observation"}`, "Observation",
		[]at{{"required", "Observation.status"}, {"required", "Observation.code"}}},
	{"missing required in backbone", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"component":[{"valueString":"a"}]}`, "Observation",
		[]at{{"required", "Observation.component[0].code"}}},
	{"missing required reference and array", `{"resourceType":"Coverage","status":"active"}`, "Coverage",
		[]at{{"required", "Coverage.beneficiary"}, {"required", "Coverage.payor"}}},
	{"missing required choice", `{"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"}}`, "MedicationRequest",
		[]at{{"required", "MedicationRequest.medication"}}},
	{"missing required through contentReference", `{"resourceType":"QuestionnaireResponse","status":"completed","item":[{"linkId":"1","item":[{"text":"no link id"}]}]}`, "QuestionnaireResponse",
		[]at{{"required", "QuestionnaireResponse.item[0].item[0].linkId"}}},
	{"bad date", `{"resourceType":"Patient","birthDate":"2020-13-01"}`, "Patient",
		[]at{{"value", "Patient.birthDate"}}},
	{"dateTime with time and no time zone", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2020-01-01T10:00:00"}`, "Observation",
		[]at{{"value", "Observation.effectiveDateTime"}}},
	{"bad instant", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"issued":"2020-01-01"}`, "Observation",
		[]at{{"value", "Observation.issued"}}},
	{"bad time", `{"resourceType":"Parameters","parameter":[{"name":"t","valueTime":"24:00:00"}]}`, "Parameters",
		[]at{{"value", "Parameters.parameter[0].valueTime"}}},
	{"integer given as 1.5", `{"resourceType":"Patient","multipleBirthInteger":1.5}`, "Patient",
		[]at{{"value", "Patient.multipleBirthInteger"}}},
	{"integer with exponent", `{"resourceType":"Patient","multipleBirthInteger":1e2}`, "Patient",
		[]at{{"value", "Patient.multipleBirthInteger"}}},
	{"integer beyond 32 bits", `{"resourceType":"Patient","multipleBirthInteger":2147483648}`, "Patient",
		[]at{{"value", "Patient.multipleBirthInteger"}}},
	{"positiveInt 0", `{"resourceType":"Parameters","parameter":[{"name":"n","valuePositiveInt":0}]}`, "Parameters",
		[]at{{"value", "Parameters.parameter[0].valuePositiveInt"}}},
	{"unsignedInt -1", `{"resourceType":"Parameters","parameter":[{"name":"n","valueUnsignedInt":-1}]}`, "Parameters",
		[]at{{"value", "Parameters.parameter[0].valueUnsignedInt"}}},
	{"integer given as string", `{"resourceType":"Patient","multipleBirthInteger":"2"}`, "Patient",
		[]at{{"value", "Patient.multipleBirthInteger"}}},
	{"boolean given as string", `{"resourceType":"Patient","active":"true"}`, "Patient",
		[]at{{"value", "Patient.active"}}},
	{"decimal given as string", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":"1.5"}}`, "Observation",
		[]at{{"value", "Observation.valueQuantity.value"}}},
	{"string given as number", `{"resourceType":"Patient","name":[{"family":12}]}`, "Patient",
		[]at{{"value", "Patient.name[0].family"}}},
	{"object given as string", `{"resourceType":"Patient","name":["Amy Shaw"]}`, "Patient",
		[]at{{"structure", "Patient.name[0]"}}},
	{"bad id at root", `{"resourceType":"Patient","id":"bad id!"}`, "Patient",
		[]at{{"value", "Patient.id"}}},
	{"id longer than 64", `{"resourceType":"Patient","id":"` + strings.Repeat("a", 65) + `"}`, "Patient",
		[]at{{"value", "Patient.id"}}},
	{"uri with space", `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid: 1"}]}`, "Bundle",
		[]at{{"value", "Bundle.entry[0].fullUrl"}}},
	{"div that is not a div", `{"resourceType":"Patient","text":{"status":"generated","div":"<p>x</p>"}}`, "Patient",
		[]at{{"value", "Patient.text.div"}}},
	{"narrative without div", `{"resourceType":"Patient","text":{"status":"generated"}}`, "Patient",
		[]at{{"required", "Patient.text.div"}}},
	{"extension without url, with unknown value type", `{"resourceType":"Patient","extension":[{"valueFoo":"x"}]}`, "Patient",
		[]at{{"required", "Patient.extension[0].url"}, {"structure", "Patient.extension[0].valueFoo"}}},
	{"modifierExtension checked like extension", `{"resourceType":"Patient","modifierExtension":[{"url":"http://x","valueBoolean":"yes"}]}`, "Patient",
		[]at{{"value", "Patient.modifierExtension[0].valueBoolean"}}},
	{"nested extension", `{"resourceType":"Patient","extension":[{"url":"http://x","extension":[{"url":"a","valueCoding":{"code":""}}]}]}`, "Patient",
		[]at{{"value", "Patient.extension[0].extension[0].valueCoding.code"}}},
	{"contained resource", `{"resourceType":"Patient","contained":[{"resourceType":"Practitioner","id":"p1","gender":["male"]}]}`, "Patient",
		[]at{{"structure", "Patient.contained[0].gender"}}},
	{"contained without resourceType", `{"resourceType":"Patient","contained":[{"id":"p1"}]}`, "Patient",
		[]at{{"required", "Patient.contained[0]"}}},
	{"contained of unknown type", `{"resourceType":"Patient","contained":[{"resourceType":"Bogus"}]}`, "Patient",
		[]at{{"structure", "Patient.contained[0]"}}},
	{"bundle entry resource", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient"}},{"resource":{"resourceType":"Observation","status":"final"},"request":{"method":"POST","url":"Observation"}}]}`, "Bundle",
		[]at{{"required", "Bundle.entry[1].resource.code"}}},
	{"bundle entry missing request url", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE"}}]}`, "Bundle",
		[]at{{"required", "Bundle.entry[0].request.url"}}},
	{"deep bundle nesting", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","gender":["x"]}}]}}]}}]}`, "Bundle",
		[]at{{"structure", "Bundle.entry[0].resource.entry[0].resource.entry[0].resource.gender"}}},
	{"outcome that is not an OperationOutcome", `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201","outcome":{"resourceType":"Patient"}}}]}`, "Bundle",
		[]at{{"structure", "Bundle.entry[0].response.outcome"}}},
	{"parameters resource", `{"resourceType":"Parameters","parameter":[{"name":"p","resource":{"resourceType":"Patient","active":1}}]}`, "Parameters",
		[]at{{"value", "Parameters.parameter[0].resource.active"}}},
	{"issues in document order", `{"resourceType":"Observation","zzz":1,"status":"final ","code":{"coding":[{"code":1}]},"aaa":2}`, "Observation",
		[]at{{"structure", "Observation.zzz"}, {"value", "Observation.status"}, {"value", "Observation.code.coding[0].code"}, {"structure", "Observation.aaa"}}},
	{"unknown resourceType", `{"resourceType":"Patinet","id":"x"}`, "Patinet",
		[]at{{"structure", ""}}},
	{"missing resourceType", `{"id":"x"}`, "",
		[]at{{"required", ""}}},
	{"resourceType not a string", `{"resourceType":7}`, "",
		[]at{{"structure", ""}}},
	{"abstract resourceType", `{"resourceType":"DomainResource"}`, "DomainResource",
		[]at{{"structure", ""}}},
	{"non-object body", `["resourceType","Patient"]`, "",
		[]at{{"structure", ""}}},
	{"string body", `"Patient"`, "",
		[]at{{"structure", ""}}},
	{"invalid JSON", `{"resourceType":"Patient",`, "",
		[]at{{"structure", ""}}},
	{"trailing data", `{"resourceType":"Patient"} {}`, "",
		[]at{{"structure", ""}}},
	{"empty body", ``, "",
		[]at{{"structure", ""}}},
	{"invalid UTF-8", "{\"resourceType\":\"Patient\",\"gender\":\"\xff\"}", "",
		[]at{{"structure", ""}}},
	{"control character in string", "{\"resourceType\":\"Patient\",\"gender\":\"a\x01\"}", "",
		[]at{{"structure", ""}}},
	{"too deep", strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), "",
		[]at{{"structure", ""}}},
}

func TestInvalid(t *testing.T) {
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			rt, issues := Resource([]byte(tc.body))
			if rt != tc.rt {
				t.Errorf("Resource(%s): got resourceType %q, want %q", tc.body, rt, tc.rt)
			}
			got := []at{}
			for _, is := range issues {
				got = append(got, at{is.Code, is.Expression})
				if is.Severity != "error" || is.Diagnostics == "" || len(is.Diagnostics) > 400 {
					t.Errorf("Resource(%s): issue %+v: want severity error and a short diagnostic", tc.body, is)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Resource(%s): issues (-want +got):\n%s", tc.body, diff)
			}
		})
	}
}

// TestDiagnosticsGolden pins the full text of every issue the invalid cases
// produce, since the diagnostics reach people. Run with -update after a
// deliberate change and read the diff.
func TestDiagnosticsGolden(t *testing.T) {
	var b strings.Builder
	for _, tc := range invalidCases {
		_, issues := Resource([]byte(tc.body))
		fmt.Fprintf(&b, "# %s\n", tc.name)
		for _, is := range issues {
			fmt.Fprintf(&b, "%s %s %s: %s\n", is.Severity, is.Code, is.Expression, is.Diagnostics)
		}
	}
	golden := filepath.Join("testdata", "invalid.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestDiagnosticsGolden -update)", err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("diagnostics differ from %s (-want +got):\n%s", golden, diff)
	}
}

func TestIssueCap(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Patient"`)
	for i := range maxIssues + 50 {
		fmt.Fprintf(&b, `,"x%d":1`, i)
	}
	b.WriteString(`}`)
	_, issues := Resource([]byte(b.String()))
	if len(issues) != maxIssues+1 {
		t.Fatalf("got %d issues, want %d (the cap and one that says so)", len(issues), maxIssues+1)
	}
	if last := issues[maxIssues]; last.Severity != "warning" || last.Code != "too-costly" || last.Expression != "" {
		t.Errorf("last issue: got %+v, want a too-costly warning", last)
	}
	if got := issues[maxIssues-1].Expression; got != fmt.Sprintf("Patient.x%d", maxIssues-1) {
		t.Errorf("issue %d: got %q, want the %dth unknown element in document order", maxIssues-1, got, maxIssues)
	}
}

func TestKnown(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"Patient", true}, {"Observation", true}, {"Parameters", true}, {"Binary", true},
		{"patient", false}, {"Resource", false}, {"DomainResource", false},
		{"SubscriptionStatus", false}, // R4B, not R4
		{"HumanName", false}, {"", false},
	} {
		if got := Known(tc.name); got != tc.want {
			t.Errorf("Known(%q): got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestNotInR4 checks that elements the shipped definitions add to R4 are
// refused (see notInR4 in internal/gen).
func TestNotInR4(t *testing.T) {
	for _, body := range []string{
		`{"resourceType":"Patient","meta":{"project":"x"}}`,
		`{"resourceType":"Patient","meta":{"deleted":true}}`,
		`{"resourceType":"Binary","contentType":"text/plain","url":"http://x"}`,
		`{"resourceType":"ResearchStudy","status":"active","name":"x"}`,
	} {
		if _, issues := Resource([]byte(body)); len(issues) != 1 || issues[0].Code != "structure" {
			t.Errorf("Resource(%s): got %v, want one structure issue", body, issues)
		}
	}
}

// TestSchemaShape spot-checks the loaded definitions against the R4
// specification pages.
func TestSchemaShape(t *testing.T) {
	s := loadSchema()
	if s.fhirVersion != "4.0.1" || len(s.resources) != 146 {
		t.Fatalf("got FHIR %s with %d resource types, want 4.0.1 with 146", s.fhirVersion, len(s.resources))
	}
	obs := s.resources["Observation"]
	for _, tc := range []struct {
		st       *structDef
		name     string
		typ      string
		min      int
		many     bool
		choice   bool
		hasField bool
	}{
		{obs, "valueQuantity", "Quantity", 0, false, true, true},
		{obs, "valueSampledData", "SampledData", 0, false, true, true},
		{obs, "status", "code", 1, false, false, true},
		{obs, "component", "BackboneElement", 0, true, false, true},
		{obs, "value", "", 0, false, true, false}, // only the variants are JSON names
		{s.resources["Patient"], "id", "id", 0, false, false, true},
		{s.resources["Patient"], "deceasedDateTime", "dateTime", 0, false, true, true},
		{s.resources["Coverage"], "payor", "Reference", 1, true, false, true},
		{s.element, "extension", "Extension", 0, true, false, true},
	} {
		f, ok := tc.st.fields[tc.name]
		if ok != tc.hasField {
			t.Errorf("%s.%s: got present %v, want %v", tc.st.name, tc.name, ok, tc.hasField)
			continue
		}
		if !ok {
			continue
		}
		if f.t.name != tc.typ || f.e.min != tc.min || f.e.many != tc.many || f.e.choice != tc.choice {
			t.Errorf("%s.%s: got type %s min %d many %v choice %v, want %s %d %v %v",
				tc.st.name, tc.name, f.t.name, f.e.min, f.e.many, f.e.choice, tc.typ, tc.min, tc.many, tc.choice)
		}
	}
	// Questionnaire.item.item is defined by reference to Questionnaire.item.
	item := s.resources["Questionnaire"].fields["item"].t.st
	if item == nil || item.fields["item"].t.st != item {
		t.Errorf("Questionnaire.item.item: want the structure of Questionnaire.item")
	}
	if s.resources["Extension"] != nil {
		t.Errorf("Extension is a data type, not a resource")
	}
}

// TestFastMatchers checks each byte-loop matcher against the regex it
// stands for.
func TestFastMatchers(t *testing.T) {
	inputs := []string{
		"", " ", "a", "a b", "a  b", " a", "a ", "a\tb", "a\t\tb", "a\fb", "\f", "a\vb", "a\u00a0b", "a\u2003b",
		"é", "x\ny", "x\r\n", "http://example.org/a b", "http://example.org/a", "abc\x00", "\ufffd", "a b c", "a\n b",
	}
	for re, fast := range fastMatchers {
		rx := regexp.MustCompile(`^(?:` + re + `)$`)
		for _, in := range inputs {
			if got, want := fast([]byte(in)), rx.MatchString(in); got != want {
				t.Errorf("fast matcher for %s on %q: got %v, want %v (regexp)", re, in, got, want)
			}
		}
	}
	if len(fastMatchers) != 3 {
		t.Errorf("got %d fast matchers, want 3", len(fastMatchers))
	}
	// Each must still be in use: a changed pattern in the data leaves its
	// matcher behind.
	for re := range fastMatchers {
		used := false
		for _, p := range loadSchema().prims {
			used = used || p.pattern == re
		}
		if !used {
			t.Errorf("fast matcher for %s: no primitive type has that pattern any more; remove it", re)
		}
	}
}

// TestConcurrent runs validations side by side; run with -race to check
// that the pooled state is not shared.
func TestConcurrent(t *testing.T) {
	files := validFiles(t)
	bad := []byte(`{"resourceType":"Patient","gender":["x"],"name":[{"given":["A",null]}]}`)
	t.Run("group", func(t *testing.T) {
		for i := range 4 {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				for range 20 {
					for name, body := range files {
						if _, issues := Resource(body); issues != nil {
							t.Errorf("Resource(%s): got %v, want no issues", name, issues)
						}
					}
					if _, issues := Resource(bad); len(issues) != 2 {
						t.Errorf("Resource(%s): got %v, want 2 issues", bad, issues)
					}
				}
			})
		}
	})
}

func TestBuildSchemaErrors(t *testing.T) {
	for name, in := range map[string][]byte{
		"not gzip":      []byte("structures"),
		"empty":         gz(t, `{}`),
		"bad primitive": gz(t, `{"primitives":[{"name":"x","json":"blob"}]}`),
		"bad regex":     gz(t, `{"primitives":[{"name":"x","json":"string","regex":"("}]}`),
		"unknown type":  gz(t, `{"types":[{"name":"Element","elements":[{"p":"id","max":"1","t":["nope"]}]}],"resources":[{"name":"R","elements":[]}]}`),
		"dangling ref":  gz(t, `{"types":[{"name":"Element","elements":[]}],"resources":[{"name":"R","elements":[{"p":"a","max":"*","ref":"b"}]}]}`),
	} {
		if _, err := buildSchema(in); err == nil {
			t.Errorf("buildSchema(%s): got nil error, want one", name)
		}
	}
}

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
