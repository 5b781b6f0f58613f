package scope

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var fuzzSeeds = []string{
	"openid", "fhirUser", "launch/patient", "smartgate:admin", "offline_access",
	"patient/Observation.read", "user/*.*", "system/*.cruds", "patient/*.rs",
	"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
	"patient/Observation.rs?category=a&category=b&status=final",
	"patient/Observation.rs?code=http%3A%2F%2Floinc.org%7C1234-5",
	"patient/Observation.rs?name=a+b", "patient/Observation.s?a=b=c?d",
	"patient/Observation.sr", "patient/Observaton.read", "Patient/Observation.read",
	"practitioner/Observation.read", "patient/Observation.read?x=1", "patient/Observation.rs?",
	"patient/Observation.rs?a=%zz", "patient/Observation.rs?a=%00", "", " ", "\x00", "\xff",
	"launch/", "/", ".", "?", "patient/.", "patient/*.?", "patient/*.c?=",
}

// FuzzParse checks Parse never panics and that valid scopes round-trip:
// Raw is the input, re-parsing String() gives an equal Scope, the canonical
// form means the same, and every scope covers itself.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, d := Parse(in)
		// Without spaces, ParseList must agree with Parse.
		if !strings.Contains(in, " ") {
			ss, ds := ParseList(in)
			switch {
			case in == "":
				if len(ss)+len(ds) != 0 {
					t.Fatalf("ParseList(%q): got %v %v, want nothing", in, ss, ds)
				}
			case d != nil:
				if len(ss) != 0 || len(ds) != 1 || ds[0] != *d {
					t.Fatalf("ParseList(%q): got %v %v, want the drop %+v", in, ss, ds, *d)
				}
			default:
				if len(ds) != 0 || len(ss) != 1 || !cmp.Equal(ss[0], s) {
					t.Fatalf("ParseList(%q): got %v %v, want the scope %+v", in, ss, ds, s)
				}
			}
		}
		if d != nil {
			if d.Scope != in {
				t.Fatalf("Parse(%q): dropped scope %q, want the input", in, d.Scope)
			}
			if !d.Invalid() || d.Detail == "" {
				t.Fatalf("Parse(%q): got reason %q detail %q, want unknown or malformed with a detail", in, d.Reason, d.Detail)
			}
			if desc := Describe([]Dropped{*d}); !errorDescriptionOK(desc) {
				t.Fatalf("Describe(Parse(%q)): got %q, want only error_description characters", in, desc)
			}
			return
		}
		if s.Raw != in || s.String() != in {
			t.Fatalf("Parse(%q): got raw %q, want the input", in, s.Raw)
		}
		again, d2 := Parse(s.String())
		if d2 != nil {
			t.Fatalf("Parse(%q) again: dropped %+v", in, d2)
		}
		if diff := cmp.Diff(s, again); diff != "" {
			t.Fatalf("Parse(%q) twice (-first +second):\n%s", in, diff)
		}
		if !s.Covers(s) {
			t.Fatalf("Parse(%q): does not cover itself", in)
		}
		c, d3 := Parse(s.Canonical())
		if d3 != nil {
			t.Fatalf("Parse(%q).Canonical() = %q: dropped %+v", in, s.Canonical(), d3)
		}
		if !c.Covers(s) || !s.Covers(c) {
			t.Fatalf("Parse(%q) and its canonical form %q: want them to cover each other", in, s.Canonical())
		}
		if s.Kind == KindResource {
			if s.Perms == 0 || (s.Version != 1 && s.Version != 2) || (s.Query != nil && len(s.Query) == 0) {
				t.Fatalf("Parse(%q): got %+v, want permissions, version 1 or 2, nil or non-empty query", in, s)
			}
			for _, p := range []Perms{PermC, PermR, PermU, PermD, PermS} {
				d := Allows([]Scope{s}, Interaction{ResourceType: s.Resource, Perm: p})
				if d.Allowed != s.Perms.Has(p) {
					t.Fatalf("Allows(%q, %s): got allowed %v, want %v", in, p, d.Allowed, s.Perms.Has(p))
				}
			}
		}
	})
}

// FuzzList checks ParseList never panics, never returns a scope or a drop
// twice, keeps the input's tokens, and that Join round-trips. It is not
// called FuzzParseList because -fuzz takes a regular expression and
// "go test -fuzz=FuzzParse" refuses to run when it matches two targets.
func FuzzList(f *testing.F) {
	f.Add("openid fhirUser launch/patient patient/*.rs")
	f.Add("  openid   openid\tprofile ")
	f.Add(strings.Join(fuzzSeeds, " "))
	f.Add("patient/Observation.read patient/Observation.rs patient/Observation.read")
	f.Fuzz(func(t *testing.T, in string) {
		ss, ds := ParseList(in)
		tokens := map[string]bool{}
		for tok := range strings.SplitSeq(in, " ") {
			if tok != "" {
				tokens[tok] = true
			}
		}
		seen := map[string]bool{}
		for _, s := range ss {
			if seen[s.Raw] || !tokens[s.Raw] {
				t.Fatalf("ParseList(%q): scope %q repeated or not in the input", in, s.Raw)
			}
			seen[s.Raw] = true
		}
		for _, d := range ds {
			if seen[d.Scope] || !tokens[d.Scope] || !d.Invalid() {
				t.Fatalf("ParseList(%q): dropped %q repeated, not in the input, or not invalid", in, d.Scope)
			}
			seen[d.Scope] = true
		}
		if len(seen) != len(tokens) {
			t.Fatalf("ParseList(%q): got %d distinct results, want %d distinct tokens", in, len(seen), len(tokens))
		}
		again, ds2 := ParseList(Join(ss))
		if len(ds2) != 0 {
			t.Fatalf("ParseList(Join(ParseList(%q))): dropped %+v", in, ds2)
		}
		if diff := cmp.Diff(ss, again); diff != "" {
			t.Fatalf("ParseList(Join(ParseList(%q))) (-first +second):\n%s", in, diff)
		}
		granted, dropped := Narrow(ss, ss, nil)
		if len(dropped) != 0 || len(granted) != len(ss) {
			t.Fatalf("Narrow(ParseList(%q)) against itself: got %d granted %d dropped, want all granted", in, len(granted), len(dropped))
		}
		if desc := Describe(ds); !errorDescriptionOK(desc) {
			t.Fatalf("Describe(ParseList(%q)): got %q, want only error_description characters", in, desc)
		}
	})
}
