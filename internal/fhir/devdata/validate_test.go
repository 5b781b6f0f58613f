package devdata

import (
	"testing"

	"smartgate/internal/fhir/validate"
)

// TestResourcesAreValidFHIR runs every resource through the structural
// validator that guards every FHIR write, so the set always loads.
func TestResourcesAreValidFHIR(t *testing.T) {
	for _, r := range Set() {
		typ, issues := validate.Resource(r.Body)
		if typ != r.Type {
			t.Errorf("%s/%s: validator read resourceType %q", r.Type, r.ID, typ)
		}
		for _, is := range issues {
			t.Errorf("%s/%s: %s %s at %s: %s", r.Type, r.ID, is.Severity, is.Code, is.Expression, is.Diagnostics)
		}
	}
}
