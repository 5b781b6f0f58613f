package synth

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"smartgate/internal/fhir/devdata"
	"smartgate/internal/fhir/index"
	"smartgate/internal/fhir/spec"
	"smartgate/internal/fhir/validate"
)

func all(g *Generator) []Resource {
	var out []Resource
	_ = g.Each(func(rs []Resource) error { out = append(out, rs...); return nil })
	return out
}

func digest(rs []Resource) [32]byte {
	h := sha256.New()
	for _, r := range rs {
		h.Write([]byte(r.Type + "/" + r.ID + "\n"))
		h.Write(r.Body)
	}
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d
}

func TestSameOptionsSameBytes(t *testing.T) {
	a, b := all(New(Options{Patients: 20, Seed: 42})), all(New(Options{Patients: 20, Seed: 42}))
	if len(a) != len(b) || digest(a) != digest(b) {
		t.Fatalf("two runs with the same options differ: %d and %d resources", len(a), len(b))
	}
	if c := all(New(Options{Patients: 20, Seed: 43})); digest(c) == digest(a) {
		t.Fatal("seeds 42 and 43 gave the same set")
	}
}

// TestLargerSetExtends: patient i is the same whatever the number of
// patients, so a larger run extends a smaller one (only the Groups change).
func TestLargerSetExtends(t *testing.T) {
	small, large := New(Options{Patients: 5, Seed: 9}), New(Options{Patients: 50, Seed: 9})
	if digest(small.Shared()) != digest(large.Shared()) {
		t.Error("the directory depends on the number of patients")
	}
	for i := range 5 {
		if digest(small.Chart(i)) != digest(large.Chart(i)) {
			t.Errorf("chart %d differs between a set of 5 and one of 50", i)
		}
	}
	// Charts are built on demand: in any order, the same bytes.
	if digest(large.Chart(3)) != digest(New(Options{Patients: 50, Seed: 9}).Chart(3)) {
		t.Error("chart 3 depends on what was built before it")
	}
}

// TestEveryResourceIsValidFHIR: what the FHIR API would accept on a write:
// a served type, valid structure, and an index it can extract.
func TestEveryResourceIsValidFHIR(t *testing.T) {
	for _, r := range all(New(Options{Patients: 60, Seed: 1})) {
		if !spec.Supported(r.Type) {
			t.Fatalf("%s/%s: the server does not serve %s", r.Type, r.ID, r.Type)
		}
		if _, err := index.Extract(r.Type, r.Body, "http://127.0.0.1:8080/fhir"); err != nil {
			t.Errorf("%s/%s: cannot be indexed: %v", r.Type, r.ID, err)
		}
		typ, issues := validate.Resource(r.Body)
		if typ != r.Type {
			t.Errorf("%s/%s: validator read resourceType %q", r.Type, r.ID, typ)
		}
		for _, is := range issues {
			t.Errorf("%s/%s: %s %s at %s: %s", r.Type, r.ID, is.Severity, is.Code, is.Expression, is.Diagnostics)
		}
	}
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// walk calls f for every JSON object in v.
func walk(v any, f func(o map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		f(v)
		for _, x := range v {
			walk(x, f)
		}
	case []any:
		for _, x := range v {
			walk(x, f)
		}
	}
}

// TestIDsAndReferences: ids are valid, unique, prefixed syn-<seed>-
// (apart from the dev data's), bodies start with resourceType and id, and
// every reference and attachment URL names a resource of the set.
func TestIDsAndReferences(t *testing.T) {
	set := all(New(Options{Patients: 40, Seed: 3}))
	have := map[string]bool{}
	for _, r := range set {
		key := r.Type + "/" + r.ID
		if !idPattern.MatchString(r.ID) || !strings.HasPrefix(r.ID, "syn-3-") {
			t.Errorf("%s: id is not a FHIR id starting syn-3-", key)
		}
		if have[key] {
			t.Errorf("%s: id used twice", key)
		}
		have[key] = true
		if !bytes.HasPrefix(r.Body, []byte(`{"resourceType":"`+r.Type+`","id":"`+r.ID+`"`)) {
			t.Errorf("%s: body does not start with resourceType and id", key)
		}
	}
	for _, r := range devdata.Set() {
		if have[r.Type+"/"+r.ID] {
			t.Errorf("%s/%s is also a dev data id", r.Type, r.ID)
		}
	}
	refs := 0
	for _, r := range set {
		var m map[string]any
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatalf("%s/%s: %v", r.Type, r.ID, err)
		}
		walk(m, func(o map[string]any) {
			for _, k := range []string{"reference", "url"} {
				s, ok := o[k].(string)
				if !ok || (k == "url" && !strings.HasPrefix(s, "Binary/")) || strings.HasPrefix(s, "#") {
					continue
				}
				refs++
				if !have[s] {
					t.Errorf("%s/%s: %s %q is not in the set", r.Type, r.ID, k, s)
				}
			}
		})
	}
	if refs < 1000 {
		t.Errorf("only %d references checked; is the walk broken?", refs)
	}
}

// TestShape checks what the data set promises beyond the profiles: each
// patient's Provenance names all their resources, and the Groups list the
// patients and their cohorts.
func TestShape(t *testing.T) {
	g := New(Options{Patients: 30, Seed: 5})
	for i := range 30 {
		rs := g.Chart(i)
		if rs[0].Type != "Patient" || rs[0].ID != g.PatientID(i) {
			t.Fatalf("chart %d starts with %s/%s", i, rs[0].Type, rs[0].ID)
		}
		last := rs[len(rs)-1]
		if last.Type != "Provenance" {
			t.Fatalf("chart %d ends with %s", i, last.Type)
		}
		for _, r := range rs[:len(rs)-1] {
			if !bytes.Contains(last.Body, []byte(`"reference":"`+r.Type+"/"+r.ID+`"`)) {
				t.Errorf("Provenance of %s does not name %s/%s", g.PatientID(i), r.Type, r.ID)
			}
		}
	}
	groups := g.Groups()
	if len(groups) != 1+cohortCount || groups[0].ID != "syn-5-all" {
		t.Fatalf("Groups: %d, first %s", len(groups), groups[0].ID)
	}
	var everyone struct {
		Quantity int `json:"quantity"`
		Member   []struct {
			Entity struct{ Reference string } `json:"entity"`
		} `json:"member"`
	}
	if err := json.Unmarshal(groups[0].Body, &everyone); err != nil {
		t.Fatal(err)
	}
	if everyone.Quantity != 30 || len(everyone.Member) != 30 || everyone.Member[29].Entity.Reference != "Patient/"+g.PatientID(29) {
		t.Errorf("group of everyone: quantity %d, %d members", everyone.Quantity, len(everyone.Member))
	}
}

// TestNothingAfterTheAnchor: every dateTime with a time is before the
// anchor (dates alone may be later: a goal's due date, an expiry), and
// nothing happens to a patient after their death.
func TestNothingAfterTheAnchor(t *testing.T) {
	g := New(Options{Patients: 300, Seed: 2})
	for i := range 300 {
		var death time.Time
		for _, r := range g.Chart(i) {
			var m map[string]any
			if err := json.Unmarshal(r.Body, &m); err != nil {
				t.Fatal(err)
			}
			if d, ok := m["deceasedDateTime"].(string); ok {
				death, _ = time.Parse(time.RFC3339, d)
			}
			walk(m, func(o map[string]any) {
				for k, v := range o {
					s, _ := v.(string)
					ts, err := time.Parse(time.RFC3339, s)
					if err != nil {
						continue
					}
					if ts.After(anchor) {
						t.Errorf("%s/%s %s: %s is after the anchor %s", r.Type, r.ID, k, s, anchor.Format(time.DateOnly))
					}
					if !death.IsZero() && ts.After(death.Add(time.Hour)) && k != "lastUpdated" {
						t.Errorf("%s/%s %s: %s is after the patient's death at %s", r.Type, r.ID, k, s, death.Format(time.RFC3339))
					}
				}
			})
		}
	}
}
