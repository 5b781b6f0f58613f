package scope

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNarrow(t *testing.T) {
	const lab = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
	noOffline := func(s Scope) (bool, string) {
		if s.Kind == KindOfflineAccess {
			return false, "the user did not allow offline access"
		}
		return true, ""
	}
	tests := []struct {
		name       string
		requested  string
		registered string
		allowed    func(Scope) (bool, string)
		want       string   // granted, joined
		dropped    []string // scope + " " + reason
		details    []string // a part of each dropped Detail
	}{
		{
			name:       "issue example: constrained request inside registered wildcard",
			requested:  lab,
			registered: "patient/*.rs",
			want:       lab,
		},
		{
			name:       "registered constrained does not allow requested unconstrained",
			requested:  "patient/Observation.rs",
			registered: lab,
			dropped:    []string{"patient/Observation.rs " + string(ReasonNotRegistered)},
			details:    []string{"request patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory instead"},
		},
		{
			name:       "echo requested form and keep request order",
			requested:  "patient/Observation.read launch/patient openid patient/Condition.rs fhirUser",
			registered: "openid fhirUser launch/patient patient/*.rs",
			want:       "patient/Observation.read launch/patient openid patient/Condition.rs fhirUser",
		},
		{
			name:       "v2 request under v1 registration and the reverse",
			requested:  "patient/Observation.rs user/Patient.read",
			registered: "patient/*.read user/Patient.rs",
			want:       "patient/Observation.rs user/Patient.read",
		},
		{
			name:       "intersection with reasons",
			requested:  "openid offline_access patient/Observation.rs user/Observation.rs patient/Condition.cruds launch",
			registered: "openid offline_access patient/*.rs launch",
			allowed:    noOffline,
			want:       "openid patient/Observation.rs launch",
			dropped: []string{
				"offline_access " + string(ReasonNotAllowed),
				"user/Observation.rs " + string(ReasonNotRegistered),
				"patient/Condition.cruds " + string(ReasonNotRegistered),
			},
			details: []string{
				"the user did not allow offline access",
				"registered for patient/ scopes, not user/",
				"no scope in the client's registration covers",
			},
		},
		{
			name:       "not allowed without why gets a default",
			requested:  "openid",
			registered: "openid",
			allowed:    func(Scope) (bool, string) { return false, "" },
			dropped:    []string{"openid " + string(ReasonNotAllowed)},
			details:    []string{"policy"},
		},
		{
			name:       "fixed scope not registered",
			requested:  "smartgate:admin openid",
			registered: "openid",
			want:       "openid",
			dropped:    []string{"smartgate:admin " + string(ReasonNotRegistered)},
			details:    []string{"registration does not include it"},
		},
		{
			name:       "nothing registered",
			requested:  "openid patient/*.rs",
			registered: "",
			dropped:    []string{"openid " + string(ReasonNotRegistered), "patient/*.rs " + string(ReasonNotRegistered)},
			details:    []string{"administrator", "administrator"},
		},
		{
			name:       "constrained registered allows the same or narrower constraint",
			requested:  "patient/Observation.r?category=laboratory&status=final patient/Observation.rs?category=vital-signs",
			registered: "patient/Observation.rs?category=laboratory",
			want:       "patient/Observation.r?category=laboratory&status=final",
			dropped:    []string{"patient/Observation.rs?category=vital-signs " + string(ReasonNotRegistered)},
			details:    []string{"only with the constraint ?category=laboratory"},
		},
		{
			name:       "wider permissions than registered",
			requested:  "patient/Observation.cruds",
			registered: "patient/Observation.rs",
			dropped:    []string{"patient/Observation.cruds " + string(ReasonNotRegistered)},
			details:    []string{"permissions"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			granted, dropped := Narrow(mustParseAll(t, tt.requested), mustParseAll(t, tt.registered), tt.allowed)
			if got := Join(granted); got != tt.want {
				t.Errorf("Narrow(%q, %q): got granted %q, want %q", tt.requested, tt.registered, got, tt.want)
			}
			var got []string
			for _, d := range dropped {
				got = append(got, d.Scope+" "+string(d.Reason))
			}
			if diff := cmp.Diff(tt.dropped, got); diff != "" {
				t.Fatalf("Narrow(%q, %q) dropped (-want +got):\n%s", tt.requested, tt.registered, diff)
			}
			for i, d := range dropped {
				if !strings.Contains(d.Detail, tt.details[i]) {
					t.Errorf("Narrow(%q) dropped %q: got detail %q, want it to contain %q", tt.requested, d.Scope, d.Detail, tt.details[i])
				}
			}
		})
	}
}

// TestNarrowDuplicates feeds duplicates straight to Narrow (ParseList would
// have removed them), in short and long lists.
func TestNarrowDuplicates(t *testing.T) {
	for _, n := range []int{3, 40} {
		var requested []Scope
		var want []string
		for i := range n {
			s := mustParse(t, fmt.Sprintf("patient/%s.rs", ResourceTypes()[i]))
			requested = append(requested, s, s)
			want = append(want, s.Raw)
		}
		requested = append(requested, requested...)
		granted, dropped := Narrow(requested, mustParseAll(t, "patient/*.rs"), nil)
		if got := Join(granted); got != strings.Join(want, " ") {
			t.Errorf("Narrow(%d scopes, each 4 times): got %q, want %q", n, got, strings.Join(want, " "))
		}
		if len(dropped) != 0 {
			t.Errorf("Narrow(%d scopes): got dropped %+v, want none", n, dropped)
		}
	}
}

// TestNarrowAllowedOnlyForRegistered checks the policy hook sees only scopes
// the registration covers, once each, in request order.
func TestNarrowAllowedOnlyForRegistered(t *testing.T) {
	var seen []string
	allowed := func(s Scope) (bool, string) {
		seen = append(seen, s.Raw)
		return true, ""
	}
	Narrow(mustParseAll(t, "openid user/*.rs patient/Observation.rs openid"), mustParseAll(t, "openid patient/*.cruds"), allowed)
	if diff := cmp.Diff([]string{"openid", "patient/Observation.rs"}, seen); diff != "" {
		t.Errorf("allowed calls (-want +got):\n%s", diff)
	}
}
