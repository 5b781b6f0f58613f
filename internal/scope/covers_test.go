package scope

import "testing"

// TestV1V2Equivalence checks that v1 words and their v2 letters cover each
// other in every context and for concrete and wildcard types.
func TestV1V2Equivalence(t *testing.T) {
	pairs := []struct{ v1, v2 string }{
		{"read", "rs"},
		{"write", "cud"},
		{"*", "cruds"},
	}
	for _, ctx := range []string{"patient", "user", "system"} {
		for _, typ := range []string{"Observation", "*"} {
			for _, p := range pairs {
				a := mustParse(t, ctx+"/"+typ+"."+p.v1)
				b := mustParse(t, ctx+"/"+typ+"."+p.v2)
				if !a.Covers(b) || !b.Covers(a) {
					t.Errorf("%s and %s: got Covers %v/%v, want true both ways", a, b, a.Covers(b), b.Covers(a))
				}
				if a.Canonical() != b.Canonical() {
					t.Errorf("%s and %s: got canonical %q and %q, want equal", a, b, a.Canonical(), b.Canonical())
				}
			}
		}
	}
	read, write := mustParse(t, "patient/Observation.read"), mustParse(t, "patient/Observation.write")
	if read.Covers(write) || write.Covers(read) {
		t.Errorf("read and write: got Covers %v/%v, want false both ways", read.Covers(write), write.Covers(read))
	}
}

func TestCovers(t *testing.T) {
	const lab = "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
	tests := []struct {
		a, b string
		want bool
	}{
		// Identity and non-resource scopes.
		{"openid", "openid", true},
		{"openid", "fhirUser", false},
		{"launch", "launch/patient", false},
		{"launch/patient", "launch", false},
		{"offline_access", "online_access", false},
		{"smartgate:admin", "user/*.cruds", false},
		{"user/*.cruds", "smartgate:admin", false},
		{"patient/*.cruds", "launch/patient", false},
		// Permissions.
		{"patient/Observation.rs", "patient/Observation.r", true},
		{"patient/Observation.rs", "patient/Observation.s", true},
		{"patient/Observation.r", "patient/Observation.rs", false},
		{"patient/Observation.cruds", "patient/Observation.cd", true},
		{"patient/Observation.read", "patient/Observation.s", true},
		{"patient/Observation.read", "patient/Observation.c", false},
		{"patient/Observation.write", "patient/Observation.u", true},
		{"patient/Observation.write", "patient/Observation.cud", true},
		{"patient/Observation.write", "patient/Observation.r", false},
		{"patient/Observation.*", "patient/Observation.cruds", true},
		// Wildcard type.
		{"patient/*.rs", "patient/Observation.rs", true},
		{"patient/*.rs", "patient/Observation.r", true},
		{"patient/*.read", "patient/Patient.rs", true},
		{"patient/*.rs", "patient/*.rs", true},
		{"patient/Observation.rs", "patient/*.rs", false},
		{"patient/*.r", "patient/Observation.rs", false},
		{"patient/Observation.rs", "patient/Condition.rs", false},
		// Contexts never cross.
		{"user/*.cruds", "patient/Observation.r", false},
		{"patient/*.cruds", "user/Observation.r", false},
		{"system/*.cruds", "user/Observation.r", false},
		{"system/*.cruds", "patient/Observation.r", false},
		{"user/*.cruds", "system/Observation.r", false},
		{"system/*.cruds", "system/Observation.r", true},
		// Query constraints: the constrained scope sits inside the wider one.
		{"patient/*.rs", "patient/Observation.rs?" + lab, true},
		{"patient/Observation.rs", "patient/Observation.rs?" + lab, true},
		{"patient/Observation.read", "patient/Observation.s?" + lab, true},
		{"patient/Observation.rs?" + lab, "patient/Observation.rs", false},
		{"patient/Observation.rs?" + lab, "patient/*.rs", false},
		{"patient/Observation.rs?" + lab, "patient/Observation.rs?" + lab, true},
		{"patient/Observation.rs?" + lab, "patient/Observation.r?" + lab, true},
		{"patient/Observation.r?" + lab, "patient/Observation.rs?" + lab, false},
		{"patient/*.rs?" + lab, "patient/Observation.rs?" + lab, true},
		{"patient/Observation.rs?" + lab, "patient/Observation.rs?" + lab + "&status=final", true},
		{"patient/Observation.rs?" + lab + "&status=final", "patient/Observation.rs?" + lab, false},
		{"patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=vital-signs", false},
		{"patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=laboratory&category=vital-signs", true},
		{"patient/Observation.rs?category=laboratory&category=vital-signs", "patient/Observation.rs?category=laboratory", false},
		{"patient/Observation.rs?category=laboratory,vital-signs", "patient/Observation.rs?category=laboratory", false},
		{"patient/Observation.rs?category=a%20b", "patient/Observation.rs?category=a+b", true},
		{"patient/Observation.rs?status=final&category=a", "patient/Observation.rs?category=a&status=final", true},
		{"user/Observation.rs?" + lab, "patient/Observation.rs?" + lab, false},
	}
	for _, tt := range tests {
		a, b := mustParse(t, tt.a), mustParse(t, tt.b)
		if got := a.Covers(b); got != tt.want {
			t.Errorf("Parse(%q).Covers(%q): got %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestCoversZero(t *testing.T) {
	var zero Scope
	openid := mustParse(t, "openid")
	if zero.Covers(zero) || zero.Covers(openid) || openid.Covers(zero) {
		t.Errorf("zero Scope: got Covers true, want false: it is no scope")
	}
}
