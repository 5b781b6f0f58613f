package scope

import (
	"slices"
	"testing"
)

func TestResourceTypes(t *testing.T) {
	got := ResourceTypes()
	// R4 4.0.1: 145 types in the Patient compartment definition plus Parameters.
	if len(got) != 146 {
		t.Errorf("ResourceTypes(): got %d types, want 146", len(got))
	}
	if !slices.IsSorted(got) {
		t.Errorf("ResourceTypes(): not sorted")
	}
	for _, name := range []string{"Patient", "Observation", "Binary", "Bundle", "Group", "Provenance", "DocumentReference", "Parameters", "OperationOutcome", "MedicinalProductUndesirableEffect", "VisionPrescription"} {
		if !IsResourceType(name) {
			t.Errorf("IsResourceType(%q): got false, want true", name)
		}
	}
	// Abstract types, data types, R4B/R5 types, vendor types, wrong case.
	for _, name := range []string{"Resource", "DomainResource", "SubscriptionStatus", "Subscriptions", "AccessPolicy", "Bot", "HumanName", "patient", "PATIENT", "", "*"} {
		if IsResourceType(name) {
			t.Errorf("IsResourceType(%q): got true, want false", name)
		}
	}
	got[0] = "Changed"
	if ResourceTypes()[0] != "Account" {
		t.Errorf("ResourceTypes(): the caller's copy changed the package's list")
	}
	if FHIRVersion() != "4.0.1" {
		t.Errorf("FHIRVersion(): got %q, want 4.0.1", FHIRVersion())
	}
}

func TestSuggestType(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Observaton", "Observation"},
		{"observation", "Observation"},
		{"Pateint", "Patient"},
		{"Conditions", "Condition"},
		{"Xyzzyq", ""},
		{"Obs", ""},
	}
	for _, tt := range tests {
		if got := suggestType(tt.in); got != tt.want {
			t.Errorf("suggestType(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
