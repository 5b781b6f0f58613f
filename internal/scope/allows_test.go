package scope

import (
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAllows(t *testing.T) {
	const lab = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
	labQ := url.Values{"category": {lab}}
	tests := []struct {
		name    string
		granted string
		in      Interaction
		want    Decision
	}{
		{
			name:    "v1 read allows read",
			granted: "launch/patient patient/Observation.read",
			in:      Interaction{ResourceType: "Observation", Perm: PermR},
			want: Decision{Allowed: true, Unconstrained: true, Contexts: []string{"patient"},
				Matches: []Match{{Scope: "patient/Observation.read", Context: "patient"}}},
		},
		{
			name:    "v1 read allows search",
			granted: "patient/Observation.read",
			in:      Interaction{ResourceType: "Observation", Perm: PermS, Params: url.Values{"code": {"1234-5"}}},
			want: Decision{Allowed: true, Unconstrained: true, Contexts: []string{"patient"},
				Matches: []Match{{Scope: "patient/Observation.read", Context: "patient"}}},
		},
		{
			name:    "v1 read does not allow create",
			granted: "patient/Observation.read",
			in:      Interaction{ResourceType: "Observation", Perm: PermC},
			want:    Decision{Needed: "patient/Observation.c"},
		},
		{
			name:    "v1 write allows update",
			granted: "user/Observation.write",
			in:      Interaction{ResourceType: "Observation", Perm: PermU},
			want: Decision{Allowed: true, Unconstrained: true, Contexts: []string{"user"},
				Matches: []Match{{Scope: "user/Observation.write", Context: "user"}}},
		},
		{
			name:    "v1 write does not allow read",
			granted: "user/Observation.write",
			in:      Interaction{ResourceType: "Observation", Perm: PermR},
			want:    Decision{Needed: "user/Observation.r"},
		},
		{
			name:    "v2 wildcard type",
			granted: "patient/*.rs",
			in:      Interaction{ResourceType: "Condition", Perm: PermR},
			want: Decision{Allowed: true, Unconstrained: true, Contexts: []string{"patient"},
				Matches: []Match{{Scope: "patient/*.rs", Context: "patient"}}},
		},
		{
			name:    "v2 letters: d without r",
			granted: "system/Observation.d",
			in:      Interaction{ResourceType: "Observation", Perm: PermD},
			want: Decision{Allowed: true, Unconstrained: true, Contexts: []string{"system"},
				Matches: []Match{{Scope: "system/Observation.d", Context: "system"}}},
		},
		{
			name:    "other type not allowed, suggestion in v2 form",
			granted: "patient/Observation.rs",
			in:      Interaction{ResourceType: "Condition", Perm: PermS},
			want:    Decision{Needed: "patient/Condition.s"},
		},
		{
			name:    "no resource scopes: suggest patient",
			granted: "openid fhirUser",
			in:      Interaction{ResourceType: "Observation", Perm: PermR},
			want:    Decision{Needed: "patient/Observation.r"},
		},
		{
			name:    "only system scopes: suggest system",
			granted: "system/Patient.rs",
			in:      Interaction{ResourceType: "Observation", Perm: PermS},
			want:    Decision{Needed: "system/Observation.s"},
		},
		{
			name:    "user and system scopes: suggest user",
			granted: "system/Patient.rs user/Patient.rs",
			in:      Interaction{ResourceType: "Observation", Perm: PermC},
			want:    Decision{Needed: "user/Observation.c"},
		},
		{
			name:    "patient wins the suggestion",
			granted: "system/Patient.rs user/Patient.rs patient/Patient.r",
			in:      Interaction{ResourceType: "Patient", Perm: PermU},
			want:    Decision{Needed: "patient/Patient.u"},
		},
		{
			name:    "no resource type: wildcard suggestion",
			granted: "",
			in:      Interaction{Perm: PermS},
			want:    Decision{Needed: "patient/*.s"},
		},
		{
			name:    "constrained read: constraint for the FHIR layer",
			granted: "patient/Observation.rs?category=" + lab,
			in:      Interaction{ResourceType: "Observation", Perm: PermR},
			want: Decision{Allowed: true, Constraints: []url.Values{labQ}, Contexts: []string{"patient"},
				Matches: []Match{{Scope: "patient/Observation.rs?category=" + lab, Context: "patient", Query: labQ}},
				Needed:  "patient/Observation.r"},
		},
		{
			name:    "constrained search satisfied by the search's own parameters",
			granted: "patient/Observation.rs?category=" + lab,
			in:      Interaction{ResourceType: "Observation", Perm: PermS, Params: url.Values{"category": {lab}, "date": {"ge2020"}}},
			want: Decision{Allowed: true, Unconstrained: true, Contexts: []string{"patient"},
				Matches: []Match{{Scope: "patient/Observation.rs?category=" + lab, Context: "patient"}}},
		},
		{
			name:    "constrained search with a different value stays constrained",
			granted: "patient/Observation.rs?category=" + lab,
			in:      Interaction{ResourceType: "Observation", Perm: PermS, Params: url.Values{"category": {"vital-signs"}}},
			want: Decision{Allowed: true, Constraints: []url.Values{labQ}, Contexts: []string{"patient"},
				Matches: []Match{{Scope: "patient/Observation.rs?category=" + lab, Context: "patient", Query: labQ}},
				Needed:  "patient/Observation.s"},
		},
		{
			name:    "constrained search with an OR value stays constrained",
			granted: "patient/Observation.rs?category=laboratory",
			in:      Interaction{ResourceType: "Observation", Perm: PermS, Params: url.Values{"category": {"laboratory,vital-signs"}}},
			want: Decision{Allowed: true, Constraints: []url.Values{{"category": {"laboratory"}}}, Contexts: []string{"patient"},
				Matches: []Match{{Scope: "patient/Observation.rs?category=laboratory", Context: "patient", Query: url.Values{"category": {"laboratory"}}}},
				Needed:  "patient/Observation.s"},
		},
		{
			name:    "constraint params do not satisfy a read",
			granted: "patient/Observation.rs?category=laboratory",
			in:      Interaction{ResourceType: "Observation", Perm: PermR, Params: url.Values{"category": {"laboratory"}}},
			want: Decision{Allowed: true, Constraints: []url.Values{{"category": {"laboratory"}}}, Contexts: []string{"patient"},
				Matches: []Match{{Scope: "patient/Observation.rs?category=laboratory", Context: "patient", Query: url.Values{"category": {"laboratory"}}}},
				Needed:  "patient/Observation.r"},
		},
		{
			name:    "two constrained scopes: OR of their constraints",
			granted: "patient/Observation.rs?category=laboratory patient/*.r?_security=N",
			in:      Interaction{ResourceType: "Observation", Perm: PermR},
			want: Decision{Allowed: true, Constraints: []url.Values{{"category": {"laboratory"}}, {"_security": {"N"}}}, Contexts: []string{"patient"},
				Matches: []Match{
					{Scope: "patient/Observation.rs?category=laboratory", Context: "patient", Query: url.Values{"category": {"laboratory"}}},
					{Scope: "patient/*.r?_security=N", Context: "patient", Query: url.Values{"_security": {"N"}}},
				},
				Needed: "patient/Observation.r"},
		},
		{
			name:    "unconstrained scope makes constraints moot but Matches keep the pairing",
			granted: "user/Observation.rs?category=laboratory patient/Observation.rs",
			in:      Interaction{ResourceType: "Observation", Perm: PermR},
			want: Decision{Allowed: true, Unconstrained: true, Contexts: []string{"patient", "user"},
				Matches: []Match{
					{Scope: "user/Observation.rs?category=laboratory", Context: "user", Query: url.Values{"category": {"laboratory"}}},
					{Scope: "patient/Observation.rs", Context: "patient"},
				}},
		},
		{
			name:    "contexts listed in patient, user, system order",
			granted: "system/*.rs user/*.rs patient/*.rs",
			in:      Interaction{ResourceType: "Patient", Perm: PermR},
			want: Decision{Allowed: true, Unconstrained: true, Contexts: []string{"patient", "user", "system"},
				Matches: []Match{
					{Scope: "system/*.rs", Context: "system"},
					{Scope: "user/*.rs", Context: "user"},
					{Scope: "patient/*.rs", Context: "patient"},
				}},
		},
		{
			name:    "more than one permission is refused",
			granted: "patient/*.cruds",
			in:      Interaction{ResourceType: "Patient", Perm: PermR | PermS},
			want:    Decision{},
		},
		{
			name:    "no permission is refused",
			granted: "patient/*.cruds",
			in:      Interaction{ResourceType: "Patient"},
			want:    Decision{},
		},
		{
			name:    "unknown permission bit is refused",
			granted: "patient/*.cruds",
			in:      Interaction{ResourceType: "Patient", Perm: 1 << 6},
			want:    Decision{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Allows(mustParseAll(t, tt.granted), tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Allows(%q, %+v) (-want +got):\n%s", tt.granted, tt.in, diff)
			}
		})
	}
}

// TestAllowsEveryPerm checks each single permission against cruds, v1 words
// and the five single letters.
func TestAllowsEveryPerm(t *testing.T) {
	for _, p := range []Perms{PermC, PermR, PermU, PermD, PermS} {
		for _, g := range []string{"patient/Observation.cruds", "patient/Observation.*", "patient/*.cruds"} {
			if d := Allows(mustParseAll(t, g), Interaction{ResourceType: "Observation", Perm: p}); !d.Allowed || !d.Unconstrained || d.Needed != "" {
				t.Errorf("Allows(%s, %s): got %+v, want allowed unconstrained", g, p, d)
			}
		}
		for _, q := range []Perms{PermC, PermR, PermU, PermD, PermS} {
			g := "patient/Observation." + q.String()
			d := Allows(mustParseAll(t, g), Interaction{ResourceType: "Observation", Perm: p})
			if d.Allowed != (p == q) {
				t.Errorf("Allows(%s, %s): got allowed %v, want %v", g, p, d.Allowed, p == q)
			}
			if !d.Allowed && d.Needed != "patient/Observation."+p.String() {
				t.Errorf("Allows(%s, %s): got needed %q, want patient/Observation.%s", g, p, d.Needed, p)
			}
		}
	}
}
