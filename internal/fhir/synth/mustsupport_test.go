package synth

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The proof that every must-support element is filled: the elements come
// from the US Core 6.1.0 StructureDefinitions themselves (shared/, beside
// the repository), not from a hand-typed list, so a profile this test
// reads and the generator disagree on fails here.

const usCoreDir = "../../../../shared/us-core-6.1.0"

// exception is a must-support element a resource of a profile may lack.
type exception struct {
	path string
	// never: the element cannot be filled for this profile at all (it is
	// inherited from a parent profile and the child's own rules leave no
	// room for it). Otherwise it is situational: present only in some
	// records (a resolved problem has an abatement, a declined vaccine a
	// statusReason), so not every patient has it, but the generated set
	// must have it somewhere.
	never bool
	why   string
}

var singleValueVitals = []string{"us-core-heart-rate", "us-core-respiratory-rate", "us-core-body-temperature", "us-core-body-weight",
	"us-core-body-height", "us-core-bmi", "us-core-head-circumference", "head-occipital-frontal-circumference-percentile",
	"pediatric-bmi-for-age", "pediatric-weight-for-height"}

// exceptions, by profile id. Everything not listed must be present in
// every patient's resources of the profile.
var exceptions = func() map[string][]exception {
	m := map[string][]exception{
		"us-core-blood-pressure": {
			{path: "Observation.value[x]", never: true, why: "blood pressure values are in its systolic and diastolic components (US Core vital signs: no value[x] when components are present)"},
			{path: "Observation.dataAbsentReason", why: "only when no pressure was taken"},
			{path: "Observation.component.dataAbsentReason", why: "only when a pressure could not be read"},
		},
		"us-core-pulse-oximetry": {
			{path: "Observation.dataAbsentReason", why: "only when not measured"},
			{path: "Observation.component", why: "only on supplemental oxygen (inpatient stays)"},
			{path: "Observation.component.code", why: "only on supplemental oxygen"},
			{path: "Observation.component.value[x]", why: "only on supplemental oxygen"},
			{path: "Observation.component:FlowRate", why: "only on supplemental oxygen"},
			{path: "Observation.component:FlowRate.code", why: "only on supplemental oxygen"},
			{path: "Observation.component:FlowRate.valueQuantity", why: "only on supplemental oxygen"},
			{path: "Observation.component:FlowRate.valueQuantity.value", why: "only on supplemental oxygen"},
			{path: "Observation.component:FlowRate.valueQuantity.unit", why: "only on supplemental oxygen"},
			{path: "Observation.component:FlowRate.valueQuantity.system", why: "only on supplemental oxygen"},
			{path: "Observation.component:FlowRate.valueQuantity.code", why: "only on supplemental oxygen"},
			{path: "Observation.component:Concentration", why: "only on supplemental oxygen"},
			{path: "Observation.component:Concentration.code", why: "only on supplemental oxygen"},
			{path: "Observation.component:Concentration.valueQuantity", why: "only on supplemental oxygen"},
			{path: "Observation.component:Concentration.valueQuantity.value", why: "only on supplemental oxygen"},
			{path: "Observation.component:Concentration.valueQuantity.unit", why: "only on supplemental oxygen"},
			{path: "Observation.component:Concentration.valueQuantity.system", why: "only on supplemental oxygen"},
			{path: "Observation.component:Concentration.valueQuantity.code", why: "only on supplemental oxygen"},
			{path: "Observation.component.dataAbsentReason", never: true, why: "the oxygen flow and concentration components are recorded only when known"},
		},
		"us-core-observation-lab": {{path: "Observation.dataAbsentReason", why: "only when a result could not be reported"}},
		"us-core-observation-clinical-result": {
			{path: "Observation.dataAbsentReason", why: "only for a non-diagnostic study"},
			{path: "Observation.value[x]", why: "absent from a non-diagnostic study (which has a dataAbsentReason instead)"},
		},
		"us-core-observation-screening-assessment": {
			{path: "Observation.dataAbsentReason", why: "only when a question was declined"},
			{path: "Observation.value[x]", why: "a panel has members, not a value; its answers have values"},
			{path: "Observation.hasMember", why: "only the panel has members"},
		},
		"us-core-condition-problems-health-concerns": {
			{path: "Condition.abatement[x]", why: "only for resolved problems"},
			{path: "Condition.category:screening-assessment", why: "only for concerns found by an SDOH screen (food insecurity)"},
		},
		"us-core-condition-encounter-diagnosis": {
			{path: "Condition.abatement[x]", why: "only once the illness resolved"},
		},
		"us-core-immunization":       {{path: "Immunization.statusReason", why: "only for vaccines not given"}},
		"us-core-allergyintolerance": {{path: "AllergyIntolerance.reaction", why: "a 'no known allergy' record has none"}, {path: "AllergyIntolerance.reaction.manifestation", why: "a 'no known allergy' record has none"}},
	}
	for _, p := range singleValueVitals {
		m[p] = append(m[p],
			exception{path: "Observation.dataAbsentReason", why: "only when not measured"},
			exception{path: "Observation.component", never: true, why: "only blood pressure and pulse oximetry have components"},
			exception{path: "Observation.component.code", never: true, why: "no components"},
			exception{path: "Observation.component.value[x]", never: true, why: "no components"},
			exception{path: "Observation.component.dataAbsentReason", never: true, why: "no components"},
		)
	}
	return m
}()

// everyPatient are the profiles every patient's chart has (others depend
// on age, sex or problems: devices, pregnancy, the pediatric growth
// charts, sexual orientation and alcohol use for adults).
var everyPatient = []string{
	"us-core-patient", "us-core-relatedperson", "us-core-coverage", "us-core-encounter",
	"us-core-condition-problems-health-concerns", "us-core-condition-encounter-diagnosis", "us-core-allergyintolerance",
	"us-core-heart-rate", "us-core-respiratory-rate", "us-core-body-temperature", "us-core-pulse-oximetry",
	"us-core-body-weight", "us-core-body-height", "us-core-bmi",
	"us-core-observation-lab", "us-core-diagnosticreport-lab", "us-core-servicerequest", "us-core-specimen",
	"us-core-observation-screening-assessment", "us-core-questionnaireresponse",
	"us-core-medicationrequest", "us-core-medicationdispense", "us-core-immunization", "us-core-procedure",
	"us-core-observation-clinical-result", "us-core-diagnosticreport-note", "us-core-documentreference",
	"us-core-goal", "us-core-careteam", "us-core-careplan", "us-core-provenance",
}

type structureDef struct {
	URL            string `json:"url"`
	ID             string `json:"id"`
	Kind           string `json:"kind"`
	Type           string `json:"type"`
	BaseDefinition string `json:"baseDefinition"`
	Differential   struct {
		Element []map[string]any `json:"element"`
	} `json:"differential"`
}

type profileSet struct {
	byURL     map[string]*structureDef
	valueSets map[string]map[string]any
}

func loadProfiles(t *testing.T) *profileSet {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(usCoreDir, "*.json"))
	if len(files) == 0 {
		t.Skipf("no US Core definitions in %s (shared/ beside the repository)", usCoreDir)
	}
	ps := &profileSet{byURL: map[string]*structureDef{}, valueSets: map[string]map[string]any{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var head struct {
			ResourceType string `json:"resourceType"`
			URL          string `json:"url"`
		}
		if json.Unmarshal(b, &head) != nil {
			continue
		}
		switch head.ResourceType {
		case "StructureDefinition":
			sd := &structureDef{}
			if err := json.Unmarshal(b, sd); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			ps.byURL[sd.URL] = sd
		case "ValueSet":
			var vs map[string]any
			_ = json.Unmarshal(b, &vs)
			ps.valueSets[head.URL] = vs
		}
	}
	return ps
}

// profile is one profile with its US Core ancestors merged: its elements
// by id (the most specific definition first) and its must-support ids.
type profile struct {
	id       string
	elements map[string][]map[string]any
	ms       []string
}

func (ps *profileSet) profile(url string) *profile {
	p := &profile{elements: map[string][]map[string]any{}}
	ms := map[string]bool{}
	for sd := ps.byURL[url]; sd != nil; sd = ps.byURL[sd.BaseDefinition] {
		if p.id == "" {
			p.id = sd.ID
		}
		for _, e := range sd.Differential.Element {
			id, _ := e["id"].(string)
			p.elements[id] = append(p.elements[id], e)
			if e["mustSupport"] == true {
				ms[id] = true
			}
		}
	}
	for id := range ms {
		p.ms = append(p.ms, id)
	}
	sort.Strings(p.ms)
	return p
}

// fallbackValueSets expands the value sets of slice bindings whose
// definitions are not in shared/ (FHIR core and the problem/concern set).
var fallbackValueSets = map[string][]string{
	"http://hl7.org/fhir/us/core/ValueSet/us-core-problem-or-health-concern": {
		"http://terminology.hl7.org/CodeSystem/condition-category|problem-list-item",
		"http://hl7.org/fhir/us/core/CodeSystem/condition-category|health-concern"},
	"http://hl7.org/fhir/ValueSet/medicationrequest-category": {"http://terminology.hl7.org/CodeSystem/medicationrequest-category|*"},
	"http://hl7.org/fhir/ValueSet/servicerequest-category": {
		"http://snomed.info/sct|108252007", "http://snomed.info/sct|363679005", "http://snomed.info/sct|409063005",
		"http://snomed.info/sct|409073007", "http://snomed.info/sct|387713003"},
}

// expand lists "system|code" (or "system|*" for a whole system, which a
// filter also gives: a loose but safe reading) of a value set.
func (ps *profileSet) expand(url string) []string {
	url, _, _ = strings.Cut(url, "|")
	if f, ok := fallbackValueSets[url]; ok {
		return f
	}
	vs := ps.valueSets[url]
	if vs == nil {
		return nil
	}
	var out []string
	compose, _ := vs["compose"].(map[string]any)
	incs, _ := compose["include"].([]any)
	for _, inc := range incs {
		inc := inc.(map[string]any)
		for _, v := range asList(inc["valueSet"]) {
			out = append(out, ps.expand(v.(string))...)
		}
		sys, _ := inc["system"].(string)
		if sys == "" {
			continue
		}
		concepts := asList(inc["concept"])
		if len(concepts) == 0 {
			out = append(out, sys+"|*")
		}
		for _, c := range concepts {
			out = append(out, sys+"|"+c.(map[string]any)["code"].(string))
		}
	}
	return out
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// contains reports whether actual has everything pattern has (FHIR
// pattern[x] semantics: lists match when each pattern item matches some
// actual item).
func contains(actual, pattern any) bool {
	switch p := pattern.(type) {
	case map[string]any:
		a, ok := actual.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range p {
			if !contains(a[k], v) {
				return false
			}
		}
		return true
	case []any:
		a := asList(actual)
		for _, pv := range p {
			if !slices.ContainsFunc(a, func(av any) bool { return contains(av, pv) }) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(actual, pattern)
}

// step follows one element name from nodes: a choice [x] takes any typed
// variant; a primitive's extensions are in its "_name" sibling.
func step(nodes []any, name string, next string) []any {
	var out []any
	for _, n := range nodes {
		m, ok := n.(map[string]any)
		if !ok {
			continue
		}
		if base, ok := strings.CutSuffix(name, "[x]"); ok {
			for k, v := range m {
				if len(k) > len(base) && strings.HasPrefix(k, base) && k[len(base)] >= 'A' && k[len(base)] <= 'Z' {
					out = append(out, asList(v)...)
				}
			}
			continue
		}
		v := m[name]
		if next == "extension" && m["_"+name] != nil {
			v = m["_"+name]
		}
		out = append(out, asList(v)...)
	}
	return out
}

// resolve returns the values at element id in resource res (nil when
// absent), applying the slices the id names.
func (ps *profileSet) resolve(p *profile, res map[string]any, id string) []any {
	parts := strings.Split(id, ".")
	nodes := []any{res}
	prefix := parts[0]
	for k, part := range parts[1:] {
		name, slice, _ := strings.Cut(part, ":")
		next := ""
		if k+2 < len(parts) {
			next, _, _ = strings.Cut(parts[k+2], ":")
		}
		nodes = step(nodes, name, next)
		prefix += "." + part
		if slice != "" {
			nodes = slices.DeleteFunc(nodes, func(n any) bool { return !ps.inSlice(p, prefix, name, n) })
		}
		if len(nodes) == 0 {
			return nil
		}
	}
	return nodes
}

// inSlice reports whether item belongs to the slice whose element id is
// sliceID: the patterns and fixed values of the slice and its children,
// an extension slice's URL, or else the value set the slice is bound to.
func (ps *profileSet) inSlice(p *profile, sliceID, name string, item any) bool {
	constrained := false
	for id, defs := range p.elements {
		if id != sliceID && !strings.HasPrefix(id, sliceID+".") {
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(id, sliceID), ".")
		for _, e := range defs {
			for k, v := range e {
				if !strings.HasPrefix(k, "pattern") && !strings.HasPrefix(k, "fixed") {
					continue
				}
				constrained = true
				vals := []any{item}
				if rel != "" {
					for _, s := range strings.Split(rel, ".") {
						vals = step(vals, s, "")
					}
				}
				if !slices.ContainsFunc(vals, func(x any) bool { return contains(x, v) }) {
					return false
				}
			}
		}
	}
	if constrained {
		return true
	}
	for _, e := range p.elements[sliceID] {
		if name == "extension" || name == "modifierExtension" {
			for _, ty := range asList(e["type"]) {
				for _, prof := range asList(ty.(map[string]any)["profile"]) {
					m, _ := item.(map[string]any)
					return m != nil && m["url"] == prof
				}
			}
		}
		if b, ok := e["binding"].(map[string]any); ok {
			allowed := ps.expand(b["valueSet"].(string))
			if allowed == nil {
				return true // a value set not at hand: any item
			}
			m, _ := item.(map[string]any)
			for _, cd := range asList(m["coding"]) {
				cd := cd.(map[string]any)
				sys, _ := cd["system"].(string)
				c, _ := cd["code"].(string)
				if slices.Contains(allowed, sys+"|"+c) || slices.Contains(allowed, sys+"|*") {
					return true
				}
			}
			return false
		}
	}
	return true
}

func TestMustSupportElementsAreFilled(t *testing.T) {
	ps := loadProfiles(t)
	const patients = 300
	g := New(Options{Patients: patients, Seed: 7})
	profiles := map[string]*profile{}
	prof := func(url string) *profile {
		if profiles[url] == nil {
			if ps.byURL[url] == nil {
				t.Fatalf("no StructureDefinition %s in %s", url, usCoreDir)
			}
			profiles[url] = ps.profile(url)
		}
		return profiles[url]
	}
	exc := func(p *profile, path string) *exception {
		for k, e := range exceptions[p.id] {
			if e.path == path {
				return &exceptions[p.id][k]
			}
		}
		return nil
	}
	// seen[profile][path]: filled in some resource of the whole set.
	seen := map[string]map[string]bool{}
	ids := map[string]bool{} // the test also proves ids unique over a large set
	check := func(who string, rs []Resource, perPatient bool) map[string]bool {
		// filled[profile][path] over rs
		filled := map[string]map[string]bool{}
		for _, r := range rs {
			if ids[r.Type+"/"+r.ID] {
				t.Errorf("%s/%s: id used twice", r.Type, r.ID)
			}
			ids[r.Type+"/"+r.ID] = true
			var m map[string]any
			if err := json.Unmarshal(r.Body, &m); err != nil {
				t.Fatalf("%s/%s: %v", r.Type, r.ID, err)
			}
			meta, _ := m["meta"].(map[string]any)
			for _, u := range asList(meta["profile"]) {
				p := prof(u.(string))
				if filled[p.id] == nil {
					filled[p.id] = map[string]bool{}
				}
				if seen[p.id] == nil {
					seen[p.id] = map[string]bool{}
				}
				for _, id := range p.ms {
					if ps.resolve(p, m, id) != nil {
						filled[p.id][id] = true
						seen[p.id][id] = true
					}
				}
			}
		}
		has := map[string]bool{}
		for pid, got := range filled {
			has[pid] = true
			var p *profile
			for _, x := range profiles {
				if x.id == pid {
					p = x
				}
			}
			for _, id := range p.ms {
				if got[id] {
					if e := exc(p, id); e != nil && e.never {
						t.Errorf("%s: %s %s is filled, but the exception list says it never is (%s)", who, pid, id, e.why)
					}
					continue
				}
				if e := exc(p, id); e != nil && (e.never || perPatient) {
					continue
				}
				t.Errorf("%s: must-support %s of %s is not filled in any of its %s resources", who, id, pid, pid)
			}
		}
		return has
	}
	check("the shared directory", g.Shared(), false)
	for i := range patients {
		has := check(g.PatientID(i), g.Chart(i), true)
		for _, want := range everyPatient {
			if !has[want] {
				t.Errorf("%s has no resource of %s", g.PatientID(i), want)
			}
		}
	}
	// Situational elements must still turn up somewhere in the set, and
	// every profile in shared/ that the generator claims is covered.
	for pid, excs := range exceptions {
		for _, e := range excs {
			if !e.never && !seen[pid][e.path] {
				t.Errorf("situational %s of %s (%s) is filled nowhere in %d patients", e.path, pid, e.why, patients)
			}
		}
	}
	parents := map[string]bool{}
	for url := range profiles {
		for sd := ps.byURL[url]; sd != nil; sd = ps.byURL[sd.BaseDefinition] {
			parents[sd.URL] = true
		}
	}
	var missing []string
	for url, sd := range ps.byURL {
		if sd.Kind == "resource" && !parents[url] && !notGenerated[sd.ID] {
			missing = append(missing, sd.ID+" ("+url+")")
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("no generated resource claims profile %s", m)
	}
}

// notGenerated are the US Core 6.1.0 resource profiles the set has no
// resource of, and why.
var notGenerated = map[string]bool{
	// Occupation and industry codes (CDC ODH) are not in the curated
	// tables: no reliable source for them at hand.
	"us-core-observation-occupation": true,
}
