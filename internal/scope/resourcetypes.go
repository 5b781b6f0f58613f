package scope

import (
	"slices"
	"strings"
)

// The resource type list is generated from the official FHIR R4 definitions
// shipped in ../shared/fhir-r4 (see internal/gen for the selection rule).
//go:generate go run ./internal/gen -in ../../../shared/fhir-r4 -out resourcetypes_gen.go

// IsResourceType reports whether name is a FHIR R4 (4.0.1) resource type,
// such as "Observation". Names are case-sensitive; "Resource" and
// "DomainResource" are abstract and not resource types.
func IsResourceType(name string) bool {
	_, ok := slices.BinarySearch(resourceTypes[:], name)
	return ok
}

// ResourceTypes returns the FHIR R4 resource types, sorted. The slice is a
// fresh copy the caller may keep or change.
func ResourceTypes() []string {
	return slices.Clone(resourceTypes[:])
}

// FHIRVersion is the FHIR release whose resource types the package accepts.
func FHIRVersion() string { return fhirVersion }

// suggestType returns the resource type a misspelt name most likely meant,
// or "" when none is close. It runs only on the error path.
func suggestType(name string) string {
	for _, t := range resourceTypes {
		if strings.EqualFold(t, name) {
			return t
		}
	}
	best, bestDist := "", 3 // accept up to two edits
	if len(name) < 5 {
		bestDist = 2 // short names: one edit only
	}
	for _, t := range resourceTypes {
		if d := editDistance(name, t, bestDist); d < bestDist {
			best, bestDist = t, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, or limit when it
// is at least limit.
func editDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}
