// Command gen writes structures.json.gz for package validate: the element
// tree of every FHIR R4 resource type and complex data type, and the JSON
// form and value pattern of every primitive type.
//
// The data comes from the official FHIR definitions in ../shared/fhir-r4
// (profiles-types.json.gz and profiles-resources.json.gz, StructureDefinition
// bundles): the snapshot elements of every StructureDefinition whose
// derivation is "specialization" and whose fhirVersion is the release named
// in version.info. The version filter drops SubscriptionStatus, which the
// bundle carries from R4B (4.3.0). Profiles (derivation "constraint", such as
// SimpleQuantity) are left out: they narrow a base type, and elements name the
// base type.
//
// The shipped bundle is not quite the published R4 4.0.1: it adds a few
// elements that R4 does not define (see notInR4). The generator drops them so
// that a resource using them is refused as it would be by any R4 server, and
// it fails when one of them is no longer in the input, so the list cannot go
// stale silently. One deviation is kept as shipped: EvidenceVariable.
// characteristic has a later release's shape (definitionByTypeAndValue,
// timeFromEvent, ...) instead of R4's (participantEffective[x],
// timeFromStart, groupMeasure); restoring R4's would mean typing it by hand.
//
// Output: gzip-compressed JSON (see the file type below) with one element
// record per snapshot element: its path, cardinality, types and whether it
// is a summary element (ElementDefinition.isSummary, which _summary=true
// keeps: https://hl7.org/fhir/R4/search.html#summary). Choice elements keep
// their "[x]" name and list their types; the validator expands them to JSON
// names by the rule of https://hl7.org/fhir/R4/formats.html#choice (value[x]
// with type Quantity is "valueQuantity").
//
// Run it through go generate in internal/fhir/validate, or from the
// repository root:
//
//	go run ./internal/fhir/validate/internal/gen -in ../shared/fhir-r4 -out internal/fhir/validate/structures.json.gz
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// command is the regeneration command written into the output.
const command = "cd internal/fhir/validate && go generate (runs: go run ./internal/gen -in ../../../../shared/fhir-r4 -out structures.json.gz)"

func main() {
	in := flag.String("in", "../shared/fhir-r4", "directory holding the FHIR R4 definitions (version.info, profiles-types.json.gz, profiles-resources.json.gz)")
	out := flag.String("out", "internal/fhir/validate/structures.json.gz", "file to write")
	flag.Parse()

	data, skipped, err := generate(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	for _, s := range skipped {
		fmt.Fprintln(os.Stderr, "gen: skipped", s)
	}
	gz, err := compress(data)
	if err == nil {
		err = os.WriteFile(*out, gz, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// compress gzips data. The validator embeds the compressed file; the header
// carries no name or time, so the same data gives the same bytes.
func compress(data []byte) ([]byte, error) {
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err == nil {
		_, err = zw.Write(data)
	}
	if err == nil {
		err = zw.Close()
	}
	return b.Bytes(), err
}

// file is the generated document. The validator reads the same shape.
type file struct {
	Comment     string      `json:"comment"`
	FHIRVersion string      `json:"fhirVersion"`
	Primitives  []primitive `json:"primitives"`
	Types       []structure `json:"types"`     // complex data types, including Element and BackboneElement
	Resources   []structure `json:"resources"` // concrete resource types
}

// primitive is one primitive type.
type primitive struct {
	Name string `json:"name"`
	// JSON is the JSON type that carries the value: "string", "number" or
	// "boolean" (https://hl7.org/fhir/R4/json.html#primitive).
	JSON string `json:"json"`
	// Regex is the value pattern from the regex extension on the type's
	// value element; the specification means it anchored at both ends.
	Regex string `json:"regex,omitempty"`
	// NoExtensions is set when the type may not carry extensions (xhtml),
	// so no "_name" sibling is allowed.
	NoExtensions bool `json:"noExtensions,omitempty"`
}

// structure is a resource or complex type and its elements, in snapshot order.
type structure struct {
	Name     string    `json:"name"`
	Elements []element `json:"elements"`
}

// element is one snapshot element. Path is relative to the structure
// ("name", "contact.telecom", "value[x]").
type element struct {
	Path string   `json:"p"`
	Min  int      `json:"min,omitempty"`
	Max  string   `json:"max"` // "1" or "*"
	Type []string `json:"t,omitempty"`
	// Ref replaces Type for an element defined by reference to another
	// element of the same structure ("item" for Questionnaire.item.item).
	Ref string `json:"ref,omitempty"`
	// Summary is ElementDefinition.isSummary: the element belongs to the
	// summary form a client asks for with _summary=true.
	Summary bool `json:"sum,omitempty"`
}

// jsonType is the JSON type of each primitive, from the table in
// https://hl7.org/fhir/R4/json.html#primitive. The definitions do not carry
// it: positiveInt and unsignedInt have System.String value elements there.
var jsonType = map[string]string{
	"boolean": "boolean", "integer": "number", "positiveInt": "number",
	"unsignedInt": "number", "decimal": "number",
	"base64Binary": "string", "canonical": "string", "code": "string",
	"date": "string", "dateTime": "string", "id": "string", "instant": "string",
	"markdown": "string", "oid": "string", "string": "string", "time": "string",
	"uri": "string", "url": "string", "uuid": "string", "xhtml": "string",
}

// notInR4 lists elements the shipped bundle defines that FHIR R4 4.0.1 does
// not (implementation additions to Meta, and later-release elements back-
// ported to a few resources); each drops the element and its descendants.
var notInR4 = []string{
	"Binary.url",
	"DeviceDefinition.bodySite",
	"DeviceDefinition.classification",
	"Meta.account", "Meta.accounts", "Meta.author", "Meta.compartment",
	"Meta.deleted", "Meta.onBehalfOf", "Meta.project",
	"ObservationDefinition.publisher",
	"ResearchStudy.associatedParty", "ResearchStudy.classifier",
	"ResearchStudy.comparisonGroup", "ResearchStudy.descriptionSummary",
	"ResearchStudy.label", "ResearchStudy.name", "ResearchStudy.objective.description",
	"ResearchStudy.outcomeMeasure", "ResearchStudy.progressStatus",
	"ResearchStudy.recruitment", "ResearchStudy.region", "ResearchStudy.result",
	"ResearchStudy.studyDesign", "ResearchStudy.whyStopped",
}

const (
	regexURL    = "http://hl7.org/fhir/StructureDefinition/regex"
	fhirTypeURL = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
	systemTypes = "http://hl7.org/fhirpath/System."
)

// release is what version.info says about the definitions.
type release struct {
	Version string // e.g. 4.0.1
	BuildID string
}

// generate reads the definitions in dir and returns the JSON document (not
// yet compressed), plus a note for every definition it left out.
func generate(dir string) (data []byte, skipped []string, err error) {
	rel, err := readVersion(filepath.Join(dir, "version.info"))
	if err != nil {
		return nil, nil, err
	}
	var sds []structureDefinition
	for _, name := range []string{"profiles-types.json.gz", "profiles-resources.json.gz"} {
		got, err := readBundle(filepath.Join(dir, name))
		if err != nil {
			return nil, nil, err
		}
		sds = append(sds, got...)
	}
	f := file{
		Comment: fmt.Sprintf("Generated by internal/gen from HL7 FHIR R4 %s (build %s) profiles-types.json.gz and profiles-resources.json.gz, published by HL7 under CC0; DO NOT EDIT. Regenerate: %s",
			rel.Version, rel.BuildID, command),
		FHIRVersion: rel.Version,
	}
	dropped := map[string]bool{}
	for _, sd := range sds {
		if sd.Derivation == "constraint" || sd.Kind == "logical" {
			continue
		}
		if sd.FHIRVersion != rel.Version {
			skipped = append(skipped, fmt.Sprintf("%s (fhirVersion %s, not %s)", sd.Type, sd.FHIRVersion, rel.Version))
			continue
		}
		switch {
		case sd.Kind == "primitive-type":
			p, err := readPrimitive(sd)
			if err != nil {
				return nil, nil, err
			}
			f.Primitives = append(f.Primitives, p)
		case sd.Kind == "complex-type":
			s, err := readStructure(sd, false, dropped)
			if err != nil {
				return nil, nil, err
			}
			f.Types = append(f.Types, s)
		case sd.Kind == "resource" && !sd.Abstract:
			s, err := readStructure(sd, true, dropped)
			if err != nil {
				return nil, nil, err
			}
			f.Resources = append(f.Resources, s)
		}
	}
	for _, p := range notInR4 {
		if !dropped[p] {
			return nil, nil, fmt.Errorf("%s is listed in notInR4 but not defined in %s; remove it from the list", p, dir)
		}
	}
	byName := func(a, b structure) int { return strings.Compare(a.Name, b.Name) }
	slices.SortFunc(f.Types, byName)
	slices.SortFunc(f.Resources, byName)
	slices.SortFunc(f.Primitives, func(a, b primitive) int { return strings.Compare(a.Name, b.Name) })
	if err := check(&f); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir, err)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil {
		return nil, nil, err
	}
	return b.Bytes(), skipped, nil
}

// check guards against a truncated or unexpected input: the counts R4 has,
// and that every type an element names is defined.
func check(f *file) error {
	if n := len(f.Resources); n < 140 || n > 150 {
		return fmt.Errorf("found %d resource types; FHIR R4 has 146", n)
	}
	if n := len(f.Primitives); n != len(jsonType) {
		return fmt.Errorf("found %d primitive types; FHIR R4 has %d", n, len(jsonType))
	}
	known := map[string]bool{"Resource": true}
	for _, p := range f.Primitives {
		known[p.Name] = true
	}
	for _, s := range append(slices.Clone(f.Types), f.Resources...) {
		known[s.Name] = true
	}
	for _, must := range []string{"Element", "BackboneElement", "Extension", "Patient", "Bundle", "Observation"} {
		if !known[must] {
			return fmt.Errorf("%s is not defined", must)
		}
	}
	// Resource.id is a summary element in every resource; a resource
	// without one means isSummary was not read.
	for _, s := range f.Resources {
		if !slices.ContainsFunc(s.Elements, func(e element) bool { return e.Path == "id" && e.Summary }) {
			return fmt.Errorf("%s.id is not marked isSummary; FHIR R4 marks it in every resource", s.Name)
		}
	}
	for _, s := range append(slices.Clone(f.Types), f.Resources...) {
		paths := map[string]bool{}
		for _, e := range s.Elements {
			paths[e.Path] = true
		}
		for _, e := range s.Elements {
			for _, t := range e.Type {
				if !known[t] {
					return fmt.Errorf("%s.%s has type %q, which is not defined", s.Name, e.Path, t)
				}
			}
			if e.Ref != "" && !paths[e.Ref] {
				return fmt.Errorf("%s.%s refers to %s, which is not an element of %s", s.Name, e.Path, e.Ref, s.Name)
			}
		}
	}
	return nil
}

// structureDefinition is the part of a StructureDefinition the generator reads.
type structureDefinition struct {
	Kind        string `json:"kind"`
	Abstract    bool   `json:"abstract"`
	Type        string `json:"type"`
	Derivation  string `json:"derivation"`
	FHIRVersion string `json:"fhirVersion"`
	Snapshot    struct {
		Element []elementDefinition `json:"element"`
	} `json:"snapshot"`
}

type elementDefinition struct {
	Path             string `json:"path"`
	Min              int    `json:"min"`
	Max              string `json:"max"`
	ContentReference string `json:"contentReference"`
	IsSummary        bool   `json:"isSummary"`
	Type             []struct {
		Code      string      `json:"code"`
		Extension []extension `json:"extension"`
	} `json:"type"`
}

type extension struct {
	URL         string `json:"url"`
	ValueURL    string `json:"valueUrl"`
	ValueString string `json:"valueString"`
}

func readPrimitive(sd structureDefinition) (primitive, error) {
	p := primitive{Name: sd.Type, JSON: jsonType[sd.Type]}
	if p.JSON == "" {
		return p, fmt.Errorf("primitive type %s has no JSON form in the json.html table", sd.Type)
	}
	for _, e := range sd.Snapshot.Element {
		switch e.Path {
		case sd.Type + ".value":
			for _, t := range e.Type {
				for _, x := range t.Extension {
					if x.URL == regexURL {
						p.Regex = x.ValueString
					}
				}
			}
		case sd.Type + ".extension":
			p.NoExtensions = e.Max == "0"
		}
	}
	if p.Regex == "" && sd.Type != "xhtml" {
		return p, fmt.Errorf("primitive type %s has no value regex", sd.Type)
	}
	return p, nil
}

func readStructure(sd structureDefinition, resource bool, dropped map[string]bool) (structure, error) {
	s := structure{Name: sd.Type}
	prefix := sd.Type + "."
	var drop []string
	for _, e := range sd.Snapshot.Element {
		if e.Path == sd.Type {
			continue
		}
		if slices.ContainsFunc(drop, func(d string) bool { return strings.HasPrefix(e.Path, d+".") }) {
			continue
		}
		if slices.Contains(notInR4, e.Path) {
			dropped[e.Path] = true
			drop = append(drop, e.Path)
			continue
		}
		rel, ok := strings.CutPrefix(e.Path, prefix)
		if !ok {
			return s, fmt.Errorf("%s: element %s is outside the structure", sd.Type, e.Path)
		}
		if e.Max != "1" && e.Max != "*" {
			return s, fmt.Errorf("%s: max %q; expected 1 or *", e.Path, e.Max)
		}
		out := element{Path: rel, Min: e.Min, Max: e.Max, Summary: e.IsSummary}
		if e.ContentReference != "" {
			ref, ok := strings.CutPrefix(e.ContentReference, "#"+prefix)
			if !ok {
				return s, fmt.Errorf("%s: contentReference %s is outside the structure", e.Path, e.ContentReference)
			}
			out.Ref = ref
		}
		for _, t := range e.Type {
			code := t.Code
			if strings.HasPrefix(code, systemTypes) {
				// FHIRPath system types stand for the FHIR type named in
				// the fhir-type extension (Element.id is a string,
				// Extension.url a uri).
				code = ""
				for _, x := range t.Extension {
					if x.URL == fhirTypeURL {
						code = x.ValueURL
					}
				}
				if code == "" {
					return s, fmt.Errorf("%s: type %s without a fhir-type extension", e.Path, t.Code)
				}
			}
			out.Type = append(out.Type, code)
		}
		// The snapshot types Resource.id as a plain string, but the id of
		// a resource is an id (https://hl7.org/fhir/R4/resource.html#id).
		if resource && rel == "id" {
			out.Type = []string{"id"}
		}
		if len(out.Type) == 0 && out.Ref == "" {
			return s, fmt.Errorf("%s: no type and no contentReference", e.Path)
		}
		if len(out.Type) > 1 && !strings.HasSuffix(rel, "[x]") {
			return s, fmt.Errorf("%s: %d types on an element that is not a choice", e.Path, len(out.Type))
		}
		s.Elements = append(s.Elements, out)
	}
	return s, nil
}

func readVersion(path string) (release, error) {
	f, err := os.Open(path)
	if err != nil {
		return release{}, err
	}
	defer f.Close()
	var r release
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch k {
		case "version":
			r.Version = v
		case "buildId":
			r.BuildID = v
		}
	}
	if err := sc.Err(); err != nil {
		return release{}, fmt.Errorf("%s: %w", path, err)
	}
	if r.Version == "" {
		return release{}, fmt.Errorf("%s: no version= line", path)
	}
	return r, nil
}

// readBundle returns the StructureDefinitions in a gzip-compressed Bundle.
func readBundle(path string) ([]structureDefinition, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer zr.Close()
	var bundle struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.NewDecoder(zr).Decode(&bundle); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if bundle.ResourceType != "Bundle" {
		return nil, fmt.Errorf("%s: resourceType %q, want Bundle", path, bundle.ResourceType)
	}
	var out []structureDefinition
	for i, e := range bundle.Entry {
		// Decode each entry on its own: other resource types reuse field
		// names with other JSON types.
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		if err := json.Unmarshal(e.Resource, &head); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", path, i, err)
		}
		if head.ResourceType != "StructureDefinition" {
			continue
		}
		var sd structureDefinition
		if err := json.Unmarshal(e.Resource, &sd); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", path, i, err)
		}
		out = append(out, sd)
	}
	return out, nil
}
