// Command gen writes spec_gen.go for package spec: the search parameters,
// the Patient compartment and the US Core server expectations of the
// resource types the server serves.
//
// Inputs, all published by HL7 under CC0:
//
//   - ../shared/fhir-r4/search-parameters.json: every FHIR R4 4.0.1
//     SearchParameter. A parameter belongs to a supported type when its base
//     names the type, or Resource/DomainResource (the common parameters).
//     Shared expressions ("AllergyIntolerance.code | Condition.code | ...")
//     are split at their top-level unions and only the type's own parts kept;
//     Resource.x becomes Type.x. Parameters without an expression (_text,
//     _content, _query) are left out.
//   - ../shared/us-core-6.1.0/searchparameter-*.json and
//     ../shared/fhir-r4/search-parameters-uscore.json (the seven US Core
//     parameters that base R4 lacks, which must agree with the former): US
//     Core's definition replaces a base one with the same code for the type.
//   - ../shared/fhir-r4/compartmentdefinition-patient.json: the Patient
//     compartment's parameters per type.
//   - ../shared/fhir-r4/profiles-resources.json.gz and profiles-types.json.gz:
//     the names of the choice elements (name[x]) of the supported types and
//     of the data types, which FHIRPath navigation needs to know.
//   - ../shared/us-core-6.1.0/capabilitystatement-us-core-server.json: the
//     interactions, parameters, combinations, includes and profiles a US Core
//     server is expected to support, for the supported types.
//
// Run it through go generate in internal/fhir/spec, or from the repository root:
//
//	go run ./internal/fhir/spec/internal/gen -r4 ../shared/fhir-r4 -uscore ../shared/us-core-6.1.0 -out internal/fhir/spec/spec_gen.go
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// command is the regeneration command written into the output header.
const command = "cd internal/fhir/spec && go generate (runs: go run ./internal/gen -r4 ../../../../shared/fhir-r4 -uscore ../../../../shared/us-core-6.1.0 -out spec_gen.go)"

// supported are the resource types the server serves: its whole FHIR surface.
var supported = []string{
	"AllergyIntolerance", "Binary", "CarePlan", "CareTeam", "Condition",
	"Coverage", "Device", "DiagnosticReport", "DocumentReference", "Encounter",
	"Goal", "Group", "Immunization", "Location", "Medication",
	"MedicationDispense", "MedicationRequest", "Observation", "Organization",
	"Patient", "Practitioner", "PractitionerRole", "Procedure", "Provenance",
	"QuestionnaireResponse", "RelatedPerson", "ServiceRequest", "Specimen",
}

// URL prefixes written as constants to keep the output small.
const (
	r4Prefix     = "http://hl7.org/fhir/SearchParameter/"
	usCorePrefix = "http://hl7.org/fhir/us/core/SearchParameter/"
)

func main() {
	r4 := flag.String("r4", "../shared/fhir-r4", "directory holding the FHIR R4 definitions")
	usc := flag.String("uscore", "../shared/us-core-6.1.0", "directory holding the US Core 6.1.0 definitions")
	out := flag.String("out", "internal/fhir/spec/spec_gen.go", "file to write")
	flag.Parse()

	src, err := generate(*r4, *usc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// searchParameter is the part of a SearchParameter the generator reads.
type searchParameter struct {
	ResourceType string   `json:"resourceType"`
	URL          string   `json:"url"`
	Version      string   `json:"version"`
	Code         string   `json:"code"`
	Type         string   `json:"type"`
	Base         []string `json:"base"`
	Expression   string   `json:"expression"`
	Target       []string `json:"target"`
	Component    []struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	} `json:"component"`
}

// param is one row of the output table.
type param struct {
	Code, Type, Expression, URL string
	Targets                     []string
	Components                  [][2]string // component param code, expression
	USCore                      bool
	// Replaced is the base R4 expression a US Core definition replaced,
	// when they differ: the output notes it.
	Replaced string
}

// generate reads the definitions and returns the formatted Go source.
func generate(r4Dir, usCoreDir string) ([]byte, error) {
	base, err := readBundle(filepath.Join(r4Dir, "search-parameters.json"))
	if err != nil {
		return nil, err
	}
	usc, err := readUSCoreParams(r4Dir, usCoreDir)
	if err != nil {
		return nil, err
	}
	tables, err := buildParams(base, usc)
	if err != nil {
		return nil, err
	}
	comp, err := readCompartment(filepath.Join(r4Dir, "compartmentdefinition-patient.json"))
	if err != nil {
		return nil, err
	}
	caps, err := readCapabilities(filepath.Join(usCoreDir, "capabilitystatement-us-core-server.json"))
	if err != nil {
		return nil, err
	}
	// Every parameter the CapabilityStatement names must have a definition,
	// and counts as US Core's.
	for typ, e := range caps {
		for code := range e.Params {
			i := slices.IndexFunc(tables[typ], func(p param) bool { return p.Code == code })
			if i < 0 {
				return nil, fmt.Errorf("US Core CapabilityStatement: %s search parameter %q has no definition", typ, code)
			}
			tables[typ][i].USCore = true
		}
	}
	choice, err := readChoiceElements(r4Dir)
	if err != nil {
		return nil, err
	}
	return write(tables, comp, caps, choice)
}

// buildParams makes the per-type tables, sorted by code.
func buildParams(base, usc []searchParameter) (map[string][]param, error) {
	codeOf := map[string]string{} // SearchParameter URL -> code, for components
	for _, sp := range base {
		codeOf[sp.URL] = sp.Code
	}
	tables := map[string][]param{}
	for _, typ := range supported {
		byCode := map[string]param{}
		for _, sp := range base {
			common := slices.Contains(sp.Base, "Resource") || slices.Contains(sp.Base, "DomainResource")
			if !common && !slices.Contains(sp.Base, typ) {
				continue
			}
			if sp.Expression == "" {
				continue // _text, _content, _query: not supported
			}
			expr, err := restrict(sp.Expression, typ, common)
			if err != nil {
				return nil, fmt.Errorf("%s for %s: %w", sp.URL, typ, err)
			}
			p := param{Code: sp.Code, Type: sp.Type, Expression: expr, URL: sp.URL, Targets: sorted(sp.Target)}
			for _, c := range sp.Component {
				code, ok := codeOf[c.Definition]
				if !ok {
					return nil, fmt.Errorf("%s: component %s has no definition", sp.URL, c.Definition)
				}
				p.Components = append(p.Components, [2]string{code, c.Expression})
			}
			if _, dup := byCode[p.Code]; dup {
				return nil, fmt.Errorf("%s: two base R4 parameters with code %q", typ, p.Code)
			}
			byCode[p.Code] = p
		}
		for _, sp := range usc {
			if !slices.Contains(sp.Base, typ) {
				continue
			}
			expr, err := restrict(sp.Expression, typ, false)
			if err != nil {
				return nil, fmt.Errorf("%s for %s: %w", sp.URL, typ, err)
			}
			old, ok := byCode[sp.Code]
			if ok && old.Type != sp.Type {
				return nil, fmt.Errorf("%s: type %s, but base R4 %s has %s", sp.URL, sp.Type, old.URL, old.Type)
			}
			// US Core wins: its expression is the one the profile's
			// examples and tests are written against.
			p := param{Code: sp.Code, Type: sp.Type, Expression: expr, URL: sp.URL, Targets: sorted(sp.Target), USCore: true}
			if ok && old.Expression != expr {
				p.Replaced = old.Expression
			}
			byCode[sp.Code] = p
		}
		ps := make([]param, 0, len(byCode))
		for _, p := range byCode {
			ps = append(ps, p)
		}
		slices.SortFunc(ps, func(a, b param) int { return strings.Compare(a.Code, b.Code) })
		tables[typ] = ps
	}
	if len(tables["Observation"]) < 30 || len(tables["Patient"]) < 25 {
		return nil, fmt.Errorf("Observation has %d parameters, Patient %d: the definitions look truncated", len(tables["Observation"]), len(tables["Patient"]))
	}
	return tables, nil
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// restrict keeps the parts of a union expression that start at typ
// (Resource, for a common parameter, which becomes typ) and joins them
// with " | ".
func restrict(expr, typ string, common bool) (string, error) {
	parts, err := splitUnion(expr)
	if err != nil {
		return "", err
	}
	var kept []string
	for _, part := range parts {
		start, name := leadingName(part)
		switch {
		case name == typ:
			kept = append(kept, part)
		case common && (name == "Resource" || name == "DomainResource"):
			kept = append(kept, part[:start]+typ+part[start+len(name):])
		}
	}
	if len(kept) == 0 {
		return "", fmt.Errorf("no part of %q starts at %s", expr, typ)
	}
	return strings.Join(kept, " | "), nil
}

// splitUnion splits expr at the | operators outside parentheses and
// string literals.
func splitUnion(expr string) ([]string, error) {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(expr); i++ {
		switch expr[i] {
		case '\'':
			for i++; i < len(expr) && expr[i] != '\''; i++ {
				if expr[i] == '\\' {
					i++
				}
			}
			if i >= len(expr) {
				return nil, fmt.Errorf("unterminated string in %q", expr)
			}
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced parentheses in %q", expr)
			}
		case '|':
			if depth == 0 {
				parts = append(parts, strings.TrimSpace(expr[start:i]))
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced parentheses in %q", expr)
	}
	return append(parts, strings.TrimSpace(expr[start:])), nil
}

// leadingName returns the first identifier of part (after any opening
// parentheses) and its offset.
func leadingName(part string) (int, string) {
	i := 0
	for i < len(part) && (part[i] == '(' || part[i] == ' ') {
		i++
	}
	j := i
	for j < len(part) && (part[j] == '_' || 'a' <= part[j] && part[j] <= 'z' || 'A' <= part[j] && part[j] <= 'Z' || '0' <= part[j] && part[j] <= '9') {
		j++
	}
	return i, part[i:j]
}
