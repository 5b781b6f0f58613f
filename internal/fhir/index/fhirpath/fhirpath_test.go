package fhirpath

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

const patient = `{
  "resourceType": "Patient", "id": "p1",
  "extension": [
    {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
     "extension": [
       {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3"}},
       {"url": "text", "valueString": "White"}]},
    {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-genderIdentity",
     "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "446141000124107"}]}}
  ],
  "name": [{"family": "Shaw", "given": ["Amy", "V."]}, {"family": "Baxter"}],
  "telecom": [{"system": "phone", "value": "555-1"}, {"system": "email", "value": "a@b.c"}],
  "deceasedDateTime": "2020-01-01",
  "generalPractitioner": [{"reference": "Practitioner/9"}, {"reference": "https://x.org/fhir/Organization/o/_history/2"}],
  "link": [{"other": {"type": "Patient", "identifier": {"value": "x"}}}]
}`

func TestEval(t *testing.T) {
	res := decode(t, patient)
	tests := []struct {
		expr string
		want []Item
	}{
		{"Patient.name.family", []Item{{Value: "Shaw"}, {Value: "Baxter"}}},
		{"Patient.name.given | Patient.name.family", []Item{{Value: "Amy"}, {Value: "V."}, {Value: "Shaw"}, {Value: "Baxter"}}},
		{"Observation.status", nil},
		{"Patient.telecom.where(system='email').value", []Item{{Value: "a@b.c"}}},
		{"Patient.telecom.where(system = 'fax')", nil},
		{"Patient.extension.where(url = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race').extension.value.code", []Item{{Value: "2106-3"}}},
		{"Patient.extension('http://hl7.org/fhir/us/core/StructureDefinition/us-core-genderIdentity').value.coding.code", []Item{{Value: "446141000124107"}}},
		{"(Patient.deceased as dateTime)", []Item{{Value: "2020-01-01", Type: "DateTime"}}},
		{"Patient.deceased.ofType(boolean)", nil},
		{"Patient.deceased.as(DateTime)", []Item{{Value: "2020-01-01", Type: "DateTime"}}},
		{"Patient.deceased.exists() and Patient.deceased != false", []Item{{Value: true}}},
		{"Patient.multipleBirth.exists() and Patient.multipleBirth != false", []Item{{Value: false}}},
		{"Patient.generalPractitioner.where(resolve() is Practitioner).reference", []Item{{Value: "Practitioner/9"}}},
		{"Patient.generalPractitioner.where(resolve() is Organization).reference", []Item{{Value: "https://x.org/fhir/Organization/o/_history/2"}}},
		{"Patient.link.other.where(resolve() is Patient).identifier.value", []Item{{Value: "x"}}},
		{"Patient.name.where(family = 'Shaw').given.exists()", []Item{{Value: true}}},
		{"Patient.name.where($this.family = 'Baxter').family", []Item{{Value: "Baxter"}}},
		{"Patient.id = 'p1'", []Item{{Value: true}}},
		{"Patient.id != 'p1'", []Item{{Value: false}}},
		{"Patient.gender = 'x'", nil},
		{"Patient.is(Patient)", []Item{{Value: true}}},
		{"Patient.is(FHIR.Observation)", []Item{{Value: false}}},
		{"Patient.telecom.value.ofType(string)", []Item{{Value: "555-1"}, {Value: "a@b.c"}}},
		{"Patient.name.ofType(HumanName).family", []Item{{Value: "Shaw"}, {Value: "Baxter"}}},
		{"Patient.name.ofType(string)", nil},
	}
	for _, tt := range tests {
		e, err := Parse(tt.expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.expr, err)
			continue
		}
		if diff := cmp.Diff(tt.want, e.Eval(res)); diff != "" {
			t.Errorf("Eval(%q) (-want +got):\n%s", tt.expr, diff)
		}
	}
}

func TestChoiceElements(t *testing.T) {
	obs := decode(t, `{"resourceType": "Observation", "valueQuantity": {"value": 1},
		"effectivePeriod": {"start": "2020"}, "component": [{"valueString": "x"}, {"valueCodeableConcept": {"text": "y"}}],
		"classHistory": "not a choice", "class": {"code": "AMB"}}`)
	tests := []struct {
		expr string
		want []Item
	}{
		{"Observation.value", []Item{{Value: map[string]any{"value": json.Number("1")}, Type: "Quantity"}}},
		{"(Observation.value.ofType(Quantity)) | (Observation.value.ofType(SampledData))", []Item{{Value: map[string]any{"value": json.Number("1")}, Type: "Quantity"}}},
		{"Observation.effective", []Item{{Value: map[string]any{"start": "2020"}, Type: "Period"}}},
		{"Observation.component.value.ofType(string)", []Item{{Value: "x", Type: "String"}}},
		{"(Observation.component.value.ofType(CodeableConcept)).text", []Item{{Value: "y"}}},
		// Only choice elements have typed forms.
		{"Observation.classHist", nil},
		{"Observation.class.code", []Item{{Value: "AMB"}}},
	}
	for _, tt := range tests {
		got := Must(tt.expr).Eval(obs)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Eval(%q) (-want +got):\n%s", tt.expr, diff)
		}
	}
}

func TestNotAChoiceForm(t *testing.T) {
	// onset is a choice element, but "Note" is not a type: onsetNote is not
	// one of its forms.
	cond := decode(t, `{"resourceType": "Condition", "onsetNote": "x", "onsetAge": {"value": 3}}`)
	got := Must("Condition.onset").Eval(cond)
	want := []Item{{Value: map[string]any{"value": json.Number("3")}, Type: "Age"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Eval(Condition.onset) (-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	for _, src := range []string{
		"", "Patient.", "Patient..name", "(Patient.name", "Patient.name)", "Patient.name or Patient.alias",
		"Patient.name.first()", "Patient.name[0]", "Patient.birthDate > @2020", "Patient.name + 'x'",
		"Patient.where(", "Patient.extension(url)", "Patient.ofType()", "'unterminated", "'bad \\q escape'",
		"Patient.name = 'a' = 'b'", "Patient.x is", "`", "Patient.name implies Patient.x", "Patient.as",
	} {
		if e, err := Parse(src); err == nil {
			t.Errorf("Parse(%q): got %v, want an error", src, e)
		}
	}
}

func TestLiterals(t *testing.T) {
	res := decode(t, `{"resourceType": "Group", "quantity": 3, "actual": true, "name": "it's"}`)
	for _, expr := range []string{"Group.quantity = 3", "Group.quantity = 3.0", "Group.actual = true", "Group.name = 'it\\'s'", "Group.name = 'it\\u0027s'"} {
		if got := Must(expr).Eval(res); len(got) != 1 || got[0].Value != true {
			t.Errorf("Eval(%q): got %v, want [true]", expr, got)
		}
	}
	if got := Must("Group.quantity = '3'").Eval(res); len(got) != 1 || got[0].Value != false {
		t.Errorf("Eval(Group.quantity = '3'): got %v, want [false]: a number is not a string", got)
	}
	if s := Must("Group.name").String(); s != "Group.name" {
		t.Errorf("String(): got %q", s)
	}
}

func TestReferenceType(t *testing.T) {
	tests := []struct{ ref, want string }{
		{"Patient/1", "Patient"},
		{"Patient/1/_history/3", "Patient"},
		{"http://example.org/fhir/Observation/a.b-c", "Observation"},
		{"https://example.org/fhir/Patient/1/_history/2", "Patient"},
		{"#contained", ""},
		{"urn:uuid:9d3f7b06-1f7a-4b0a-8c0a-0c5d0c9a8f11", ""},
		{"Patient/", ""},
		{"patient/1", ""},
		{"Patient", ""},
		{"", ""},
		{"Patient?identifier=x", ""},
	}
	for _, tt := range tests {
		if got := ReferenceType(tt.ref); got != tt.want {
			t.Errorf("ReferenceType(%q): got %q, want %q", tt.ref, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"Patient.name", "Observation.value.ofType(Quantity) | Observation.component.value", "a.where(b = 'c').d", "(x as T)", "Patient.deceased.exists() and Patient.deceased != false"} {
		f.Add(s)
	}
	res := decode(f, patient)
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			return
		}
		e.Eval(res)
	})
}

func TestFocusUnchanged(t *testing.T) {
	res := decode(t, patient)
	focus := make([]Item, 1, 4) // spare capacity an append could write into
	focus[0] = Item{Value: res}
	got := Must("$this | Patient.id").EvalItems(focus)
	if len(got) != 2 || len(focus) != 1 || focus[:2][1].Value != nil {
		t.Errorf("EvalItems($this | Patient.id): got %d items and the focus's spare capacity written (%v)", len(got), focus[:2][1])
	}
}
