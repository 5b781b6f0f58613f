package fhir

import (
	"testing"

	"smartgate/internal/store"
)

// TestRefCondMarksCompartment: a reference that puts the resource in the
// referenced patient's compartment says so (store.RefMatch.Compartment),
// whichever way the patient is named; one by another parameter, or to
// another type, does not.
func TestRefCondMarksCompartment(t *testing.T) {
	a := &API{base: "https://ehr.example.org/fhir"}
	for _, tt := range []struct {
		typ, name, value string
		want             bool
	}{
		{"Observation", "patient", "p1", true},
		{"Observation", "patient", "Patient/p1", true},
		{"Observation", "patient", "https://ehr.example.org/fhir/Patient/p1", true},
		{"Observation", "subject", "Patient/p1", true},
		{"Observation", "subject:Patient", "p1", true},
		{"Observation", "subject", "p1", false}, // could be a Group, a Device...
		{"Observation", "subject", "Group/g1", false},
		{"Observation", "focus", "Patient/p1", false},
		{"Encounter", "patient", "p1", true},
		{"Condition", "subject", "Patient/p1", false}, // not a compartment parameter of Condition
	} {
		c, known, err := a.criterion(tt.typ, tt.name, tt.value)
		if err != nil || !known {
			t.Errorf("%s?%s=%s: %v, known %v", tt.typ, tt.name, tt.value, err, known)
			continue
		}
		m, ok := c.(store.RefMatch)
		if !ok {
			t.Errorf("%s?%s=%s: got %#v, want a RefMatch", tt.typ, tt.name, tt.value, c)
			continue
		}
		if m.Compartment != tt.want || m.ID == "" {
			t.Errorf("%s?%s=%s: got %+v, want Compartment %v", tt.typ, tt.name, tt.value, m, tt.want)
		}
	}
}
