package validate

import (
	"slices"
)

// SummaryElements returns the top-level elements of resource type t that R4
// marks isSummary, by JSON name and sorted: the elements a server returns for
// _summary=true (https://hl7.org/fhir/R4/search.html#summary, "all
// supporting elements marked as summary in the base definition"). A choice
// element is expanded to every JSON name it may take, so Observation's
// value[x] gives valueBoolean, valueCodeableConcept, ..., valueTime; a caller
// keeps a property when its name is in the list, with no prefix matching.
//
// The list includes the Resource elements id, meta and implicitRules, which
// are summary elements in every resource. It does not include
// modifierExtension: R4 does not mark it isSummary, although a summary
// SHOULD carry modifiers (ElementDefinition.isSummary), so a caller building
// a summary adds it. It returns nil when t is not an R4 resource type (see
// Known).
func SummaryElements(t string) []string {
	return clone(t, func(s *structDef) []string { return s.summary })
}

// MandatoryElements returns the top-level elements of resource type t with
// min >= 1, by JSON name and sorted, with choice elements expanded as in
// SummaryElements (MedicationRequest's medication[x] gives
// medicationCodeableConcept and medicationReference). _summary=text keeps
// them beside text, id and meta (https://hl7.org/fhir/R4/search.html#summary).
// It returns nil when t is not an R4 resource type, and an empty list when t
// has no mandatory element (Patient).
func MandatoryElements(t string) []string {
	return clone(t, func(s *structDef) []string { return s.mandatory })
}

// clone returns a copy of one of t's lists, so a caller cannot change the
// shared schema.
func clone(t string, list func(*structDef) []string) []string {
	s := loadSchema().resources[t]
	if s == nil {
		return nil
	}
	return slices.Clone(list(s))
}

// jsonNames lists the JSON names of the elements keep selects, sorted.
func jsonNames(elems []*elemDef, keep func(*elemDef) bool) []string {
	out := []string{}
	for _, e := range elems {
		if !keep(e) {
			continue
		}
		for i := range e.types {
			out = append(out, e.jsonName(i))
		}
	}
	slices.Sort(out)
	return out
}
