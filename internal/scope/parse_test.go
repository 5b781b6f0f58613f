package scope

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustParse(t testing.TB, s string) Scope {
	t.Helper()
	sc, d := Parse(s)
	if d != nil {
		t.Fatalf("Parse(%q): dropped (%s: %s), want valid", s, d.Reason, d.Detail)
	}
	return sc
}

func mustParseAll(t testing.TB, list string) []Scope {
	t.Helper()
	ss, ds := ParseList(list)
	if len(ds) != 0 {
		t.Fatalf("ParseList(%q): dropped %+v, want none", list, ds)
	}
	return ss
}

// TestParseResourceForms covers every context, a concrete and the wildcard
// type, and every v1 permission word.
func TestParseResourceForms(t *testing.T) {
	v1 := []struct {
		word  string
		perms Perms
	}{{"read", PermsRead}, {"write", PermsWrite}, {"*", PermsAll}}
	for _, ctx := range []string{"patient", "user", "system"} {
		for _, typ := range []string{"Observation", "Patient", "Binary", "Bundle", "Group", "Provenance", "DocumentReference", "*"} {
			for _, p := range v1 {
				in := ctx + "/" + typ + "." + p.word
				want := Scope{Raw: in, Kind: KindResource, Context: ctx, Resource: typ, Perms: p.perms, Version: 1}
				if diff := cmp.Diff(want, mustParse(t, in)); diff != "" {
					t.Errorf("Parse(%q) (-want +got):\n%s", in, diff)
				}
			}
			in := ctx + "/" + typ + ".cruds"
			want := Scope{Raw: in, Kind: KindResource, Context: ctx, Resource: typ, Perms: PermsAll, Version: 2}
			if diff := cmp.Diff(want, mustParse(t, in)); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", in, diff)
			}
		}
	}
}

// TestParsePermSubsets checks all 31 non-empty ordered subsets of cruds are
// valid, and every other ordering of the same letters is malformed.
func TestParsePermSubsets(t *testing.T) {
	valid, invalid := 0, 0
	for p := Perms(1); p <= PermsAll; p++ {
		letters := p.String()
		in := "patient/Observation." + letters
		got := mustParse(t, in)
		if got.Perms != p || got.Version != 2 {
			t.Errorf("Parse(%q): got perms %s version %d, want %s version 2", in, got.Perms, got.Version, p)
		}
		valid++
		for _, perm := range permutations(letters) {
			if perm == letters {
				continue
			}
			in := "patient/Observation." + perm
			_, d := Parse(in)
			if d == nil || d.Reason != ReasonMalformed {
				t.Errorf("Parse(%q): got %v, want malformed", in, d)
				continue
			}
			if want := "order c r u d s"; !strings.Contains(d.Detail, want) || !strings.Contains(d.Detail, "."+letters) {
				t.Errorf("Parse(%q): detail %q, want it to name the rule %q and the fix .%s", in, d.Detail, want, letters)
			}
			invalid++
		}
	}
	if valid != 31 {
		t.Errorf("got %d valid subsets, want 31", valid)
	}
	// 5! + 5·4! ... every permutation of every subset minus the 31 ordered ones.
	if want := 325 - 31; invalid != want {
		t.Errorf("got %d out-of-order forms, want %d", invalid, want)
	}
}

func permutations(s string) []string {
	if len(s) <= 1 {
		return []string{s}
	}
	var out []string
	for i := range len(s) {
		rest := s[:i] + s[i+1:]
		for _, p := range permutations(rest) {
			out = append(out, s[i:i+1]+p)
		}
	}
	return out
}

func TestParseFixedScopes(t *testing.T) {
	tests := []struct {
		in   string
		kind Kind
	}{
		{"openid", KindOpenID},
		{"fhirUser", KindFHIRUser},
		{"profile", KindProfile},
		{"launch", KindLaunch},
		{"launch/patient", KindLaunchPatient},
		{"launch/encounter", KindLaunchEncounter},
		{"offline_access", KindOfflineAccess},
		{"online_access", KindOnlineAccess},
		{"smartgate:admin", KindAdmin},
	}
	for _, tt := range tests {
		want := Scope{Raw: tt.in, Kind: tt.kind}
		if diff := cmp.Diff(want, mustParse(t, tt.in)); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", tt.in, diff)
		}
		if got := tt.kind.String(); got != tt.in {
			t.Errorf("Kind(%d).String(): got %q, want %q", tt.kind, got, tt.in)
		}
	}
	if got := KindResource.String(); got != "resource" {
		t.Errorf("KindResource.String(): got %q, want resource", got)
	}
	if got := Kind(99).String(); got != "Kind(99)" {
		t.Errorf("Kind(99).String(): got %q, want Kind(99)", got)
	}
}

func TestParseQuery(t *testing.T) {
	const lab = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
	tests := []struct {
		in   string
		want url.Values
	}{
		{"patient/Observation.rs?category=" + lab, url.Values{"category": {lab}}},
		{"patient/Observation.rs?category=laboratory&status=final", url.Values{"category": {"laboratory"}, "status": {"final"}}},
		{"patient/Observation.rs?category=a&category=b", url.Values{"category": {"a", "b"}}},
		{"patient/Observation.rs?code=http%3A%2F%2Floinc.org%7C1234-5", url.Values{"code": {"http://loinc.org|1234-5"}}},
		{"patient/Observation.rs?code%3Atext=blood+pressure", url.Values{"code:text": {"blood pressure"}}},
		{"patient/Patient.r?name=M%C3%BCller", url.Values{"name": {"Müller"}}},
		{"patient/Observation.s?a=b?c", url.Values{"a": {"b?c"}}},
		{"patient/Observation.s?a=b=c", url.Values{"a": {"b=c"}}},
		{"user/*.rs?_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|N", url.Values{"_security": {"http://terminology.hl7.org/CodeSystem/v3-Confidentiality|N"}}},
		{"system/Patient.cruds?identifier=urn:oid:1.2.3|123", url.Values{"identifier": {"urn:oid:1.2.3|123"}}},
		{"patient/Observation.c?category=survey", url.Values{"category": {"survey"}}},
	}
	for _, tt := range tests {
		got := mustParse(t, tt.in)
		if diff := cmp.Diff(tt.want, got.Query); diff != "" {
			t.Errorf("Parse(%q).Query (-want +got):\n%s", tt.in, diff)
		}
		if got.Version != 2 || got.Raw != tt.in {
			t.Errorf("Parse(%q): got version %d raw %q, want version 2 and the input", tt.in, got.Version, got.Raw)
		}
	}
	if q := mustParse(t, "patient/Observation.rs").Query; q != nil {
		t.Errorf("Parse(patient/Observation.rs).Query: got %v, want nil", q)
	}
}

func TestParseDropped(t *testing.T) {
	long := "patient/Observation.rs?code=" + strings.Repeat("a", MaxLen)
	tests := []struct {
		in     string
		reason Reason
		detail string // a part of Detail that names the rule or the fix
	}{
		// RFC 6749 §3.3 characters and sizes.
		{"", ReasonMalformed, "empty"},
		{" patient/Observation.rs", ReasonMalformed, "0x20 at offset 0"},
		{"patient/Observation.rs ", ReasonMalformed, "0x20 at offset 22"},
		{"openid  profile", ReasonMalformed, "0x20"},
		{"openid\tprofile", ReasonMalformed, "0x09"},
		{"openid\n", ReasonMalformed, "0x0A"},
		{"open\x00id", ReasonMalformed, "0x00"},
		{"openid\x7f", ReasonMalformed, "0x7F"},
		{"patient/Observ\u00e9tion.rs", ReasonMalformed, "0xC3"},
		{"patient/Observation.rs\"", ReasonMalformed, "double quote"},
		{"patient\\Observation.rs", ReasonMalformed, "backslash"},
		{"\xff\xfe", ReasonMalformed, "0xFF"},
		{long, ReasonMalformed, fmt.Sprintf("limit of %d", MaxLen)},
		{strings.Repeat("x", 1<<20), ReasonMalformed, "limit"},
		// Resource-scope grammar.
		{"patient/Observation", ReasonMalformed, "needs '.'"},
		{"patient/", ReasonMalformed, "needs '.'"},
		{"patient/.rs", ReasonMalformed, "resource type is missing"},
		{"/Observation.rs", ReasonMalformed, "before '/'"},
		{"patient/Observation.", ReasonMalformed, "no permissions"},
		{"patient/Observation.x", ReasonMalformed, "'x' is not a permission"},
		{"patient/Observation.rw", ReasonMalformed, "'w' is not a permission"},
		{"patient/Observation.R", ReasonMalformed, "'R' is not a permission"},
		{"patient/Observation.Read", ReasonMalformed, "case-sensitive"},
		{"patient/Observation.WRITE", ReasonMalformed, ".cud"},
		{"patient/Observation.reads", ReasonMalformed, "'e' is not a permission"},
		{"patient/Observation.**", ReasonMalformed, "'*' is not a permission"},
		{"patient/Observation.rr", ReasonMalformed, "order c r u d s"},
		{"patient/Observation.crudss", ReasonMalformed, "write .cruds instead"},
		{"patient/Observation.sr", ReasonMalformed, "write .rs instead of .sr"},
		{"patient/Observation.rs.rs", ReasonMalformed, "'.' is not a permission"},
		{"patient/Obs-ervation.rs", ReasonMalformed, "not a name"},
		{"patient/Observation/x.rs", ReasonMalformed, "not a name"},
		{"patient/**.rs", ReasonMalformed, "not a name"},
		{"patient/Observaton.sr", ReasonMalformed, "order"}, // grammar before names
		// Queries.
		{"patient/Observation.rs?", ReasonMalformed, "nothing after '?'"},
		{"patient/Observation.rs?category", ReasonMalformed, "no value"},
		{"patient/Observation.rs?=laboratory", ReasonMalformed, "name and a value"},
		{"patient/Observation.rs?category=", ReasonMalformed, "name and a value"},
		{"patient/Observation.rs?a=1&&b=2", ReasonMalformed, "empty parameter"},
		{"patient/Observation.rs?a=1&", ReasonMalformed, "empty parameter"},
		{"patient/Observation.rs?&a=1", ReasonMalformed, "empty parameter"},
		{"patient/Observation.rs?a=%zz", ReasonMalformed, "percent-encoding"},
		{"patient/Observation.rs?a=%", ReasonMalformed, "percent-encoding"},
		{"patient/Observation.rs?a%2=1", ReasonMalformed, "percent-encoding"},
		{"patient/Observation.rs?a=%00", ReasonMalformed, "control"},
		{"patient/Observation.rs?a=%0A", ReasonMalformed, "control"},
		{"patient/Observation.rs?a=%FF", ReasonMalformed, "UTF-8"},
		{"patient/Observation.read?category=laboratory", ReasonMalformed, "write patient/Observation.rs?category=laboratory"},
		{"patient/Observation.write?a=1", ReasonMalformed, "v2 permission letters"},
		{"user/*.*?a=1", ReasonMalformed, "write user/*.cruds?a=1"},
		// Unknown names: resource types, contexts, fixed scopes.
		{"patient/Observaton.read", ReasonUnknown, "'Observaton' is not a FHIR R4"},
		{"patient/Observaton.read", ReasonUnknown, "did you mean 'Observation'"},
		{"patient/observation.rs", ReasonUnknown, "did you mean 'Observation'"},
		{"patient/Resource.rs", ReasonUnknown, "'Resource' is not a FHIR R4"},
		{"patient/DomainResource.rs", ReasonUnknown, "'DomainResource'"},
		{"patient/SubscriptionStatus.rs", ReasonUnknown, "'SubscriptionStatus'"},
		{"patient/AccessPolicy.rs", ReasonUnknown, "'AccessPolicy'"},
		{"patient/Xyzzyq.rs?a=1", ReasonUnknown, "case-sensitive"},
		{"practitioner/Observation.read", ReasonUnknown, "'practitioner' is not one of patient, user or system"},
		{"practitioner/Observaton.xyz", ReasonUnknown, "'practitioner'"},
		{"Patient/Observation.read", ReasonUnknown, "lower case: patient/"},
		{"USER/Observation.read", ReasonUnknown, "lower case: user/"},
		{"System/*.rs", ReasonUnknown, "lower case: system/"},
		{"x/y", ReasonUnknown, "'x' is not one of"},
		{"launch/Patient", ReasonUnknown, "launch/patient"},
		{"launch/location", ReasonUnknown, "launch/encounter"},
		{"launch/", ReasonUnknown, "launch context"},
		{"Launch/Patient", ReasonUnknown, "case-sensitive: did you mean 'launch/patient'"},
		{"OpenID", ReasonUnknown, "did you mean 'openid'"},
		{"openId", ReasonUnknown, "did you mean 'openid'"},
		{"fhiruser", ReasonUnknown, "did you mean 'fhirUser'"},
		{"FHIRUser", ReasonUnknown, "did you mean 'fhirUser'"},
		{"offline-access", ReasonUnknown, "did you mean 'offline_access'"},
		{"Offline_Access", ReasonUnknown, "did you mean 'offline_access'"},
		{"smartgate:Admin", ReasonUnknown, "did you mean 'smartgate:admin'"},
		{"smartgate:root", ReasonUnknown, "not a scope this server knows"},
		{"email", ReasonUnknown, "not a scope this server knows"},
		{"foo", ReasonUnknown, "not a scope this server knows"},
		{"*", ReasonUnknown, "not a scope"},
		{"patient", ReasonUnknown, "not a scope"},
	}
	for _, tt := range tests {
		got, d := Parse(tt.in)
		if d == nil {
			t.Errorf("Parse(%.60q): got valid %+v, want %s", tt.in, got, tt.reason)
			continue
		}
		if d.Reason != tt.reason || d.Scope != tt.in {
			t.Errorf("Parse(%.60q): got reason %q scope %.60q, want %q and the input", tt.in, d.Reason, d.Scope, tt.reason)
		}
		if !strings.Contains(d.Detail, tt.detail) {
			t.Errorf("Parse(%.60q): got detail %q, want it to contain %q", tt.in, d.Detail, tt.detail)
		}
		if diff := cmp.Diff(Scope{}, got); diff != "" {
			t.Errorf("Parse(%.60q): dropped scope should be zero (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestParseLengthLimit(t *testing.T) {
	prefix := "patient/Observation.rs?code="
	atLimit := prefix + strings.Repeat("a", MaxLen-len(prefix))
	if got := mustParse(t, atLimit); got.Raw != atLimit {
		t.Errorf("Parse(%d bytes): got raw of %d bytes, want the input", len(atLimit), len(got.Raw))
	}
	if _, d := Parse(atLimit + "a"); d == nil || d.Reason != ReasonMalformed {
		t.Errorf("Parse(%d bytes): got %v, want malformed", len(atLimit)+1, d)
	}
}

func TestParseList(t *testing.T) {
	tests := []struct {
		in          string
		wantScopes  []string
		wantDropped []string
	}{
		{"", nil, nil},
		{"   ", nil, nil},
		{"openid", []string{"openid"}, nil},
		{"openid fhirUser launch/patient patient/*.rs", []string{"openid", "fhirUser", "launch/patient", "patient/*.rs"}, nil},
		{"  openid   profile  ", []string{"openid", "profile"}, nil},
		{"openid openid profile openid", []string{"openid", "profile"}, nil},
		{"patient/Observation.read patient/Observation.rs", []string{"patient/Observation.read", "patient/Observation.rs"}, nil},
		{"foo openid foo", []string{"openid"}, []string{"foo"}},
		{"openid\tprofile", nil, []string{"openid\tprofile"}},
		{"openid\nprofile launch", []string{"launch"}, []string{"openid\nprofile"}},
		{"openid\u00a0profile", nil, []string{"openid\u00a0profile"}},
		{"patient/Observaton.read patient/Observation.sr openid", []string{"openid"}, []string{"patient/Observaton.read", "patient/Observation.sr"}},
	}
	for _, tt := range tests {
		ss, ds := ParseList(tt.in)
		var gotScopes, gotDropped []string
		for _, s := range ss {
			gotScopes = append(gotScopes, s.Raw)
		}
		for _, d := range ds {
			gotDropped = append(gotDropped, d.Scope)
		}
		if diff := cmp.Diff(tt.wantScopes, gotScopes); diff != "" {
			t.Errorf("ParseList(%q) scopes (-want +got):\n%s", tt.in, diff)
		}
		if diff := cmp.Diff(tt.wantDropped, gotDropped); diff != "" {
			t.Errorf("ParseList(%q) dropped (-want +got):\n%s", tt.in, diff)
		}
	}
}

// TestParseListLong exercises the set that replaces the scan for long lists.
func TestParseListLong(t *testing.T) {
	var in, want []string
	for i := range 40 {
		typ := ResourceTypes()[i]
		s := "patient/" + typ + ".rs"
		in = append(in, s, "bad"+typ, s)
		want = append(want, s)
	}
	ss, ds := ParseList(strings.Join(in, " "))
	var got []string
	for _, s := range ss {
		got = append(got, s.Raw)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseList(120 scopes) (-want +got):\n%s", diff)
	}
	if len(ds) != 40 {
		t.Errorf("ParseList(120 scopes): got %d dropped, want 40", len(ds))
	}
}

func TestJoin(t *testing.T) {
	const in = "openid  patient/Observation.read launch/patient patient/Observation.rs?category=laboratory"
	const want = "openid patient/Observation.read launch/patient patient/Observation.rs?category=laboratory"
	if got := Join(mustParseAll(t, in)); got != want {
		t.Errorf("Join(ParseList(%q)): got %q, want %q", in, got, want)
	}
	if got := Join(nil); got != "" {
		t.Errorf("Join(nil): got %q, want empty", got)
	}
}

func TestPermsString(t *testing.T) {
	tests := []struct {
		p    Perms
		want string
	}{
		{0, ""}, {PermC, "c"}, {PermR, "r"}, {PermU, "u"}, {PermD, "d"}, {PermS, "s"},
		{PermsRead, "rs"}, {PermsWrite, "cud"}, {PermsAll, "cruds"}, {PermS | PermC, "cs"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("Perms(%d).String(): got %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{"patient/Observation.read", "patient/Observation.rs"},
		{"user/*.write", "user/*.cud"},
		{"system/*.*", "system/*.cruds"},
		{"patient/Observation.rs?status=final&category=b&category=a", "patient/Observation.rs?category=a&category=b&status=final"},
		{"patient/Observation.rs?code=http%3A%2F%2Floinc.org%7C1", "patient/Observation.rs?code=http://loinc.org|1"},
		{"patient/Observation.rs?name=a+b%26c%3Dd%25", "patient/Observation.rs?name=a%20b%26c%3Dd%25"},
		{"openid", "openid"},
	}
	for _, tt := range tests {
		s := mustParse(t, tt.in)
		got := s.Canonical()
		if got != tt.want {
			t.Errorf("Parse(%q).Canonical(): got %q, want %q", tt.in, got, tt.want)
		}
		c := mustParse(t, got)
		if !c.Covers(s) || !s.Covers(c) {
			t.Errorf("Parse(%q) and its canonical form %q: want them to cover each other", tt.in, got)
		}
	}
}
