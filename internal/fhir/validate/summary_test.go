package validate

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSummaryElements spot-checks the summary elements against the R4
// resource pages (the Σ flag in each resource's table).
func TestSummaryElements(t *testing.T) {
	for _, tc := range []struct {
		typ       string
		has, lack []string
	}{
		{"Patient",
			[]string{"id", "meta", "implicitRules", "identifier", "active", "name", "telecom", "gender", "birthDate",
				"deceasedBoolean", "deceasedDateTime", "address", "managingOrganization", "link"},
			[]string{"text", "contained", "extension", "modifierExtension", "language", "photo", "contact", "communication",
				"maritalStatus", "multipleBirthBoolean", "generalPractitioner", "deceased", "deceased[x]", "resourceType"}},
		{"Observation",
			[]string{"status", "code", "subject", "effectiveDateTime", "effectivePeriod", "issued", "valueQuantity",
				"valueString", "valueCodeableConcept", "component", "hasMember"},
			[]string{"text", "category", "interpretation", "note", "bodySite", "referenceRange", "dataAbsentReason", "value"}},
		{"Binary", []string{"contentType", "securityContext"}, []string{"data"}},
		{"Bundle", []string{"type", "total", "entry", "link"}, nil},
	} {
		got := SummaryElements(tc.typ)
		for _, e := range tc.has {
			if !slices.Contains(got, e) {
				t.Errorf("SummaryElements(%q): got %v, want it to include %s", tc.typ, got, e)
			}
		}
		for _, e := range tc.lack {
			if slices.Contains(got, e) {
				t.Errorf("SummaryElements(%q): got %v, want it without %s", tc.typ, got, e)
			}
		}
	}
}

// TestMandatoryElements checks the top-level min >= 1 elements against the
// R4 resource pages.
func TestMandatoryElements(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		want []string
	}{
		{"Observation", []string{"code", "status"}},
		{"Patient", []string{}},
		{"Bundle", []string{"type"}},
		{"Binary", []string{"contentType"}},
		{"Coverage", []string{"beneficiary", "payor", "status"}},
		// A mandatory choice element gives every variant.
		{"MedicationRequest", []string{"intent", "medicationCodeableConcept", "medicationReference", "status", "subject"}},
	} {
		if diff := cmp.Diff(tc.want, MandatoryElements(tc.typ)); diff != "" {
			t.Errorf("MandatoryElements(%q) (-want +got):\n%s", tc.typ, diff)
		}
	}
}

// TestSummaryUnknownType checks that names Known refuses give nil, not a
// panic or another type's list.
func TestSummaryUnknownType(t *testing.T) {
	for _, typ := range []string{"", "patient", "Resource", "DomainResource", "HumanName", "SubscriptionStatus"} {
		if got := SummaryElements(typ); got != nil {
			t.Errorf("SummaryElements(%q): got %v, want nil", typ, got)
		}
		if got := MandatoryElements(typ); got != nil {
			t.Errorf("MandatoryElements(%q): got %v, want nil", typ, got)
		}
	}
}

// TestSummaryListsSortedAndPrivate checks every resource type: both lists
// are sorted JSON names of its own fields, every summary list has id and
// meta, and changing a returned list does not change the next answer. (A
// mandatory element is not always a summary element: R4 leaves
// AuditEvent.agent and Appointment.participant out of the summary.)
func TestSummaryListsSortedAndPrivate(t *testing.T) {
	for name, st := range loadSchema().resources {
		sum, man := SummaryElements(name), MandatoryElements(name)
		for _, list := range [][]string{sum, man} {
			if !slices.IsSorted(list) {
				t.Errorf("%s: %v is not sorted", name, list)
			}
			for _, e := range list {
				if _, ok := st.fields[e]; !ok {
					t.Errorf("%s: %s is not a JSON name of the resource", name, e)
				}
			}
		}
		if !slices.Contains(sum, "id") || !slices.Contains(sum, "meta") {
			t.Errorf("SummaryElements(%q): got %v, want id and meta", name, sum)
		}
	}
	SummaryElements("Patient")[0] = "changed"
	if got := SummaryElements("Patient"); slices.Contains(got, "changed") {
		t.Errorf("SummaryElements(Patient) after the caller changed a returned list: got %v", got)
	}
}
