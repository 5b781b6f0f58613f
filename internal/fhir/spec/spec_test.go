package spec

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTypes(t *testing.T) {
	got := Types()
	if len(got) != 28 || !slices.IsSorted(got) {
		t.Errorf("Types(): got %d types (sorted %v), want the 28 supported, sorted", len(got), slices.IsSorted(got))
	}
	for _, typ := range got {
		if !Supported(typ) {
			t.Errorf("Supported(%q): got false, want true", typ)
		}
	}
	for _, typ := range []string{"Person", "Bundle", "patient", "", "Resource"} {
		if Supported(typ) {
			t.Errorf("Supported(%q): got true, want false", typ)
		}
	}
	got[0] = "Changed"
	if Types()[0] != "AllergyIntolerance" {
		t.Errorf("Types(): the caller's copy changed the package's list")
	}
	if FHIRVersion() != "4.0.1" {
		t.Errorf("FHIRVersion(): got %q, want 4.0.1", FHIRVersion())
	}
}

func TestParamsWellFormed(t *testing.T) {
	kinds := []ParamType{Token, String, Reference, Date, Quantity, URI, Number, Composite, Special}
	for _, typ := range Types() {
		ps := Params(typ)
		if len(ps) < 6 {
			t.Errorf("Params(%s): got %d params, want at least the six common ones", typ, len(ps))
		}
		if !slices.IsSortedFunc(ps, func(a, b Param) int { return strings.Compare(a.Code, b.Code) }) {
			t.Errorf("Params(%s): not sorted by code", typ)
		}
		for i, p := range ps {
			if i > 0 && ps[i-1].Code == p.Code {
				t.Errorf("Params(%s): code %q twice", typ, p.Code)
			}
			if !slices.Contains(kinds, p.Type) {
				t.Errorf("%s %s: type %q", typ, p.Code, p.Type)
			}
			if p.Expression == "" || !strings.HasPrefix(strings.TrimLeft(p.Expression, "("), typ) {
				t.Errorf("%s %s: expression %q does not start at %s", typ, p.Code, p.Expression, typ)
			}
			if !strings.HasPrefix(p.URL, "http://hl7.org/fhir/") {
				t.Errorf("%s %s: URL %q", typ, p.Code, p.URL)
			}
			if (p.Type == Reference) != (len(p.Targets) > 0) {
				t.Errorf("%s %s: type %s with targets %q", typ, p.Code, p.Type, p.Targets)
			}
			if !slices.IsSorted(p.Targets) {
				t.Errorf("%s %s: targets %q not sorted", typ, p.Code, p.Targets)
			}
			if (p.Type == Composite) != (len(p.Components) > 0) {
				t.Errorf("%s %s: type %s with %d components", typ, p.Code, p.Type, len(p.Components))
			}
			for _, c := range p.Components {
				if _, ok := Lookup(typ, c.Param); !ok {
					t.Errorf("%s %s: component %q has no definition for %s", typ, p.Code, c.Param, typ)
				}
			}
			got, ok := Lookup(typ, p.Code)
			if !ok || got.URL != p.URL {
				t.Errorf("Lookup(%s, %s): got %v, %v; want the Params entry", typ, p.Code, got.URL, ok)
			}
		}
		for _, absent := range []string{"_text", "_content", "_query", "", "zzz"} {
			if _, ok := Lookup(typ, absent); ok {
				t.Errorf("Lookup(%s, %q): got a definition, want none", typ, absent)
			}
		}
	}
	if ps := Params("Person"); ps != nil {
		t.Errorf("Params(Person): got %d params, want nil", len(ps))
	}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		typ, code string
		want      Param
	}{
		// A shared expression cut down to the type's own parts.
		{"AllergyIntolerance", "code", Param{Code: "code", Type: Token, Expression: "AllergyIntolerance.code | AllergyIntolerance.reaction.substance", URL: "http://hl7.org/fhir/SearchParameter/clinical-code"}},
		{"MedicationRequest", "code", Param{Code: "code", Type: Token, Expression: "(MedicationRequest.medication.ofType(CodeableConcept))", URL: "http://hl7.org/fhir/SearchParameter/clinical-code"}},
		// US Core's definition wins over base R4's for the same code.
		{"Patient", "name", Param{Code: "name", Type: String, Expression: "Patient.name", URL: "http://hl7.org/fhir/us/core/SearchParameter/us-core-patient-name", USCore: true}},
		{"Condition", "abatement-date", Param{Code: "abatement-date", Type: Date, Expression: "Condition.abatement.as(dateTime) | Condition.abatement.as(Period)", URL: "http://hl7.org/fhir/us/core/SearchParameter/us-core-condition-abatement-date", USCore: true}},
		{"Observation", "patient", Param{Code: "patient", Type: Reference, Expression: "Observation.subject.where(resolve() is Patient)", Targets: []string{"Patient"}, URL: "http://hl7.org/fhir/us/core/SearchParameter/us-core-observation-patient", USCore: true}},
		// US Core additions base R4 lacks.
		{"Patient", "race", Param{Code: "race", Type: Token, Expression: "Patient.extension.where(url = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race').extension.value.code", URL: "http://hl7.org/fhir/us/core/SearchParameter/us-core-race", USCore: true}},
		{"Encounter", "discharge-disposition", Param{Code: "discharge-disposition", Type: Token, Expression: "Encounter.hospitalization.dischargeDisposition", URL: "http://hl7.org/fhir/us/core/SearchParameter/us-core-encounter-discharge-disposition", USCore: true}},
		// Common parameters, rewritten from Resource.
		{"Binary", "_tag", Param{Code: "_tag", Type: Token, Expression: "Binary.meta.tag", URL: "http://hl7.org/fhir/SearchParameter/Resource-tag"}},
		{"Patient", "_id", Param{Code: "_id", Type: Token, Expression: "Patient.id", URL: "http://hl7.org/fhir/us/core/SearchParameter/us-core-patient-id", USCore: true}},
		{"Location", "near", Param{Code: "near", Type: Special, Expression: "Location.position", URL: "http://hl7.org/fhir/SearchParameter/Location-near"}},
		{"Observation", "component-code-value-quantity", Param{Code: "component-code-value-quantity", Type: Composite, Expression: "Observation.component",
			Components: []Component{{"component-code", "code"}, {"component-value-quantity", "value.ofType(Quantity)"}}, URL: "http://hl7.org/fhir/SearchParameter/Observation-component-code-value-quantity"}},
	}
	for _, tt := range tests {
		got, ok := Lookup(tt.typ, tt.code)
		if !ok {
			t.Errorf("Lookup(%s, %s): not found", tt.typ, tt.code)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Lookup(%s, %s) (-want +got):\n%s", tt.typ, tt.code, diff)
		}
	}
	if p, _ := Lookup("Provenance", "target"); len(p.Targets) != 145 {
		t.Errorf("Lookup(Provenance, target): got %d targets, want every R4 type but Parameters (145)", len(p.Targets))
	}
}

func TestCompartmentParams(t *testing.T) {
	tests := []struct {
		typ  string
		want []string
	}{
		{"Observation", []string{"subject", "performer"}},
		{"Coverage", []string{"policy-holder", "subscriber", "beneficiary", "payor"}},
		{"Group", []string{"member"}},
		{"Patient", []string{"link"}},
		{"Device", nil},
		{"Binary", nil},
		{"Medication", nil},
		{"Person", nil},
	}
	for _, tt := range tests {
		if got := CompartmentParams(tt.typ); !slices.Equal(got, tt.want) {
			t.Errorf("CompartmentParams(%s): got %q, want %q", tt.typ, got, tt.want)
		}
	}
	for _, typ := range Types() {
		for _, code := range CompartmentParams(typ) {
			if p, ok := Lookup(typ, code); !ok || p.Type != Reference {
				t.Errorf("CompartmentParams(%s): %q is not a reference parameter of %s", typ, code, typ)
			}
		}
	}
}

// TestPatientCompartmentParam: a compartment parameter, or one that
// narrows it to Patients, puts a resource that refers to a patient by it
// in that patient's compartment; other references do not.
func TestPatientCompartmentParam(t *testing.T) {
	for _, tt := range []struct {
		typ, code string
		want      bool
	}{
		{"Observation", "subject", true},
		{"Observation", "patient", true}, // Observation.subject.where(resolve() is Patient)
		{"Observation", "performer", true},
		{"Observation", "focus", false},
		{"Observation", "encounter", false},
		{"Encounter", "patient", true},
		{"Condition", "patient", true},
		{"Condition", "subject", false}, // R4's compartment lists patient, not subject
		{"MedicationRequest", "requester", false},
		{"Immunization", "patient", true},
		{"Device", "patient", false},
		{"Observation", "nope", false},
	} {
		if got := PatientCompartmentParam(tt.typ, tt.code); got != tt.want {
			t.Errorf("PatientCompartmentParam(%s, %s) = %v, want %v", tt.typ, tt.code, got, tt.want)
		}
	}
}

// TestUSCoreDefinitions: every parameter the US Core server
// CapabilityStatement names, alone or in a combination, has a definition
// that is marked as US Core's.
func TestUSCoreDefinitions(t *testing.T) {
	n := 0
	for _, typ := range Types() {
		e, ok := USCore(typ)
		if !ok {
			continue
		}
		n++
		var codes []string
		for code := range e.Params {
			codes = append(codes, code)
		}
		for _, c := range e.Combinations {
			if c.Expectation != "SHALL" && c.Expectation != "SHOULD" && c.Expectation != "MAY" {
				t.Errorf("USCore(%s): combination %q has expectation %q", typ, c.Params, c.Expectation)
			}
			codes = append(codes, c.Params...)
		}
		for _, code := range codes {
			p, ok := Lookup(typ, code)
			if !ok || !p.USCore {
				t.Errorf("USCore(%s) names %q: Lookup got %+v, %v; want a US Core definition", typ, code, p, ok)
			}
		}
		if e.Interactions["read"] == "" || len(e.Profiles) == 0 {
			t.Errorf("USCore(%s): read %q, %d profiles; want both", typ, e.Interactions["read"], len(e.Profiles))
		}
	}
	if n != 26 {
		t.Errorf("USCore: %d supported types have expectations, want 26 (all but Binary and Group)", n)
	}
}

func TestUSCoreExpectation(t *testing.T) {
	got, ok := USCore("Observation")
	if !ok {
		t.Fatal("USCore(Observation): not found")
	}
	if got.Expectation != "SHALL" || got.Interactions["search-type"] != "SHALL" || got.Params["code"] != "MAY" {
		t.Errorf("USCore(Observation): got %q, search-type %q, code %q", got.Expectation, got.Interactions["search-type"], got.Params["code"])
	}
	if !slices.ContainsFunc(got.Combinations, func(c Combination) bool {
		return c.Expectation == "SHALL" && slices.Equal(c.Params, []string{"patient", "category", "date"})
	}) {
		t.Errorf("USCore(Observation): no SHALL patient+category+date combination in %v", got.Combinations)
	}
	if !slices.Equal(got.RevIncludes, []string{"Provenance:target"}) || len(got.Profiles) != 22 {
		t.Errorf("USCore(Observation): revincludes %q, %d profiles; want Provenance:target and 22", got.RevIncludes, len(got.Profiles))
	}
	if d, _ := USCore("DocumentReference"); d.Operations["docref"] != "SHALL" {
		t.Errorf("USCore(DocumentReference): operations %v, want docref SHALL", d.Operations)
	}
	if m, _ := USCore("MedicationRequest"); !slices.Equal(m.Includes, []string{"MedicationRequest:medication"}) {
		t.Errorf("USCore(MedicationRequest): includes %q", m.Includes)
	}
	// The result is a copy.
	got.Params["code"] = "SHALL"
	got.Combinations[0].Params[0] = "changed"
	again, _ := USCore("Observation")
	if again.Params["code"] != "MAY" || again.Combinations[0].Params[0] == "changed" {
		t.Errorf("USCore(Observation): the caller's copy changed the package's table")
	}
	if _, ok := USCore("Binary"); ok {
		t.Errorf("USCore(Binary): got expectations, want none")
	}
}
