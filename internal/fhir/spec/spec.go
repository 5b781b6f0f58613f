// Package spec holds the FHIR R4 search-parameter definitions, the Patient
// compartment and the US Core 6.1.0 server expectations for the resource
// types this server serves, generated from the official HL7 definitions
// (FHIR R4 4.0.1 search-parameters.json, compartmentdefinition-patient.json
// and the StructureDefinitions, for the names of choice elements;
// US Core 6.1.0 SearchParameters and capabilitystatement-us-core-server.json).
//
// What the tables hold, per supported type (see internal/gen for the rules):
//
//   - every base R4 SearchParameter whose base names the type, with its
//     FHIRPath expression cut down to this type's parts of the shared
//     "A.x | B.y" expression;
//   - the common parameters of Resource that have an expression: _id,
//     _lastUpdated, _profile, _security, _source and _tag. _text, _content
//     (full-text search) and _query (named queries) have no expression and
//     are left out: the server does not support them;
//   - the US Core 6.1.0 SearchParameters. Where US Core defines a parameter
//     with the same code as base R4 for the type (us-core-patient-name,
//     us-core-condition-code, ...), the US Core definition wins: its
//     expression, targets and URL replace the base ones, and USCore is set;
//   - composite parameters with their components, and the one special
//     parameter (Location near), so that the CapabilityStatement can list
//     them; the index package does not index those two kinds.
//
// The returned Param values share their Targets and Components slices with
// the package's tables: callers must not modify them.
package spec

import (
	"maps"
	"slices"
)

// The tables are generated from the definitions in ../shared (the repository's
// sibling folder); users' machines do not have it, so the result is checked in.
//go:generate go run ./internal/gen -r4 ../../../../shared/fhir-r4 -uscore ../../../../shared/us-core-6.1.0 -out spec_gen.go

// ParamType is a search parameter's type (FHIR R4 §3.1.1.4, search.html#ptypes).
type ParamType string

// The search parameter types of FHIR R4.
const (
	Token     ParamType = "token"
	String    ParamType = "string"
	Reference ParamType = "reference"
	Date      ParamType = "date"
	Quantity  ParamType = "quantity"
	URI       ParamType = "uri"
	Number    ParamType = "number"
	Composite ParamType = "composite"
	Special   ParamType = "special"
)

// Component is one part of a composite search parameter.
type Component struct {
	Param      string // the code of the component's own search parameter, e.g. "code"
	Expression string // FHIRPath, relative to the composite's expression
}

// Param is one search parameter of one resource type.
type Param struct {
	Code string // e.g. "patient", "clinical-status", "_id"
	Type ParamType
	// Expression is the FHIRPath expression restricted to this resource
	// type: the parts of a shared "A.x | B.y" expression that start at
	// other types are dropped.
	Expression string
	Targets    []string    // reference target types, sorted
	Components []Component // composite parameters only
	URL        string      // canonical URL of the SearchParameter
	USCore     bool        // defined or required by US Core 6.1.0
}

// Expectation is what the US Core 6.1.0 server CapabilityStatement asks of
// one resource type. Expectation values are SHALL, SHOULD or MAY.
type Expectation struct {
	Expectation  string            // for the resource type as a whole
	Interactions map[string]string // e.g. "read": "SHALL"
	Params       map[string]string // search parameter code -> expectation
	Combinations []Combination
	Includes     []string          // searchInclude, e.g. "MedicationRequest:medication"
	RevIncludes  []string          // searchRevInclude, e.g. "Provenance:target"
	Profiles     []string          // supportedProfile canonicals
	Operations   map[string]string // e.g. "docref": "SHALL"
}

// Combination is a search-parameter combination that US Core requires
// (the capabilitystatement-search-parameter-combination extension).
type Combination struct {
	Params      []string
	Expectation string
}

// FHIRVersion is the FHIR release the definitions come from.
func FHIRVersion() string { return fhirVersion }

// Types returns the resource types the server serves, sorted. The slice is
// the caller's to keep.
func Types() []string { return slices.Clone(types[:]) }

// Supported reports whether the server serves resource type typ.
func Supported(typ string) bool {
	_, ok := slices.BinarySearch(types[:], typ)
	return ok
}

// Params returns every search parameter of typ, sorted by Code; nil when
// typ is not supported.
func Params(typ string) []Param { return slices.Clone(params[typ]) }

// Lookup returns the search parameter code of typ.
func Lookup(typ, code string) (Param, bool) {
	ps := params[typ]
	i, ok := slices.BinarySearchFunc(ps, code, func(p Param, code string) int {
		switch {
		case p.Code < code:
			return -1
		case p.Code > code:
			return 1
		}
		return 0
	})
	if !ok {
		return Param{}, false
	}
	return ps[i], true
}

// ChoiceElement reports whether name is the name of a choice element
// (name[x], such as Observation.value[x] or Extension.value[x]) of a
// supported type or a data type: JSON spells those valueQuantity,
// valueString..., and FHIRPath's Observation.value means any of them.
func ChoiceElement(name string) bool {
	_, ok := slices.BinarySearch(choiceElements[:], name)
	return ok
}

// CompartmentParams returns the search parameters that, per the FHIR R4
// Patient CompartmentDefinition, put a resource of typ in a patient's
// compartment (e.g. Observation: subject, performer). It is nil when typ is
// not in the compartment (Device, Binary, Medication...). R4 lists "link"
// for Patient itself; a "{def}" entry (R5 style) would mean the Patient.
func CompartmentParams(typ string) []string { return slices.Clone(compartment[typ]) }

// PatientCompartmentParam reports whether a reference of typ's parameter
// code to Patient P puts the resource in P's compartment: code is one of
// CompartmentParams(typ), or narrows one of them to Patients (its
// expression is that parameter's with ".where(resolve() is Patient)",
// as Observation's patient narrows subject).
func PatientCompartmentParam(typ, code string) bool {
	ps := compartment[typ]
	if slices.Contains(ps, code) {
		return true
	}
	p, ok := Lookup(typ, code)
	if !ok {
		return false
	}
	for _, c := range ps {
		if q, ok := Lookup(typ, c); ok && q.Expression != "" && p.Expression == q.Expression+".where(resolve() is Patient)" {
			return true
		}
	}
	return false
}

// USCore returns the US Core 6.1.0 server CapabilityStatement's
// expectations for typ; false when US Core says nothing about typ. The
// result is a deep copy.
func USCore(typ string) (Expectation, bool) {
	e, ok := capabilities[typ]
	if !ok {
		return Expectation{}, false
	}
	e.Interactions = maps.Clone(e.Interactions)
	e.Params = maps.Clone(e.Params)
	e.Operations = maps.Clone(e.Operations)
	e.Combinations = slices.Clone(e.Combinations)
	for i, c := range e.Combinations {
		e.Combinations[i].Params = slices.Clone(c.Params)
	}
	e.Includes = slices.Clone(e.Includes)
	e.RevIncludes = slices.Clone(e.RevIncludes)
	e.Profiles = slices.Clone(e.Profiles)
	return e, true
}
