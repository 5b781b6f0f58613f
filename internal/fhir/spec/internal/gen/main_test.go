package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// shared is where the definitions sit beside a checkout.
var shared = filepath.Join("..", "..", "..", "..", "..", "..", "shared")

// TestGeneratedFileUpToDate regenerates the tables from ../shared and
// compares them with the checked-in file. It is skipped where the
// definitions are not present (a user's machine).
func TestGeneratedFileUpToDate(t *testing.T) {
	r4, usc := filepath.Join(shared, "fhir-r4"), filepath.Join(shared, "us-core-6.1.0")
	if _, err := os.Stat(filepath.Join(r4, "search-parameters.json")); err != nil {
		t.Skipf("FHIR R4 definitions not found at %s: %v", r4, err)
	}
	got, err := generate(r4, usc)
	if err != nil {
		t.Fatalf("generate(%s, %s): %v", r4, usc, err)
	}
	want, err := os.ReadFile(filepath.Join("..", "..", "spec_gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("spec_gen.go is stale: run go generate in internal/fhir/spec")
	}
}

func TestRestrict(t *testing.T) {
	tests := []struct {
		expr, typ string
		common    bool
		want      string
	}{
		{"AllergyIntolerance.code | AllergyIntolerance.reaction.substance | Condition.code", "AllergyIntolerance", false, "AllergyIntolerance.code | AllergyIntolerance.reaction.substance"},
		{"AllergyIntolerance.code | AllergyIntolerance.reaction.substance | Condition.code", "Condition", false, "Condition.code"},
		{"(DeviceRequest.code.ofType(CodeableConcept)) | (MedicationRequest.medication.ofType(CodeableConcept))", "MedicationRequest", false, "(MedicationRequest.medication.ofType(CodeableConcept))"},
		{"Resource.meta.tag", "Patient", true, "Patient.meta.tag"},
		{"Patient.telecom.where(system='a|b') | Person.telecom", "Patient", false, "Patient.telecom.where(system='a|b')"},
		{"Condition.abatement.as(dateTime)|Condition.abatement.as(Period)", "Condition", false, "Condition.abatement.as(dateTime) | Condition.abatement.as(Period)"},
		{"Patient.deceased.exists() and Patient.deceased != false", "Patient", false, "Patient.deceased.exists() and Patient.deceased != false"},
		{"PatientX.name", "Patient", false, ""},
	}
	for _, tt := range tests {
		got, err := restrict(tt.expr, tt.typ, tt.common)
		if tt.want == "" {
			if err == nil {
				t.Errorf("restrict(%q, %s): got %q, want an error", tt.expr, tt.typ, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("restrict(%q, %s): got %q, %v; want %q", tt.expr, tt.typ, got, err, tt.want)
		}
	}
	for _, bad := range []string{"(Patient.name", "Patient.name)", "Patient.telecom.where(system='phone)"} {
		if _, err := splitUnion(bad); err == nil {
			t.Errorf("splitUnion(%q): got nil error, want one", bad)
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := generate(dir, dir); err == nil {
		t.Errorf("generate(empty dir): got nil error, want one naming search-parameters.json")
	}
	if err := os.WriteFile(filepath.Join(dir, "search-parameters.json"), []byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient"}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := generate(dir, dir); err == nil {
		t.Errorf("generate(bundle of a Patient): got nil error, want one")
	}
}
