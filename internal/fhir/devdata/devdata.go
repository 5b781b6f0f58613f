package devdata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Resource is one resource to load: its type, id and JSON body (with
// "resourceType" and "id" set). The body carries meta.profile (the US Core
// profile it claims) but no meta.versionId or meta.lastUpdated: the store
// sets those when it writes the resource.
type Resource struct {
	Type, ID string
	Body     []byte
}

// anchor is the fixed "today" of the data set: every date is an offset
// from it, so the set never changes with the clock.
var anchor = time.Date(2025, time.June, 2, 0, 0, 0, 0, time.UTC)

// loadOrder is the order of types in Set: every type comes after the types
// it references, so a loader that checks references as it goes never meets
// one it has not loaded yet. (Location precedes PractitionerRole because a
// role names its location.)
var loadOrder = []string{
	"Organization", "Practitioner", "Location", "PractitionerRole", "Patient",
	"RelatedPerson", "Encounter", "Condition", "AllergyIntolerance",
	"Medication", "MedicationRequest", "MedicationDispense", "Immunization",
	"ServiceRequest", "Specimen", "Observation", "DiagnosticReport", "Device",
	"Procedure", "Goal", "CareTeam", "CarePlan", "DocumentReference", "Binary",
	"Coverage", "QuestionnaireResponse", "Provenance", "Group",
}

// Set returns the data set in load order: referenced resources before the
// resources that reference them (Organization, Practitioner, Location,
// PractitionerRole, Patient, then clinical data). It builds the set afresh
// on each call, and two calls return identical bytes.
func Set() []Resource {
	b := &builder{added: map[string]bool{}}
	b.directory()
	for i := range roster {
		b.chart(i, &roster[i])
	}
	b.group()
	rank := make(map[string]int, len(loadOrder))
	for i, t := range loadOrder {
		rank[t] = i
	}
	slices.SortStableFunc(b.out, func(x, y pending) int { return rank[x.typ] - rank[y.typ] })
	set := make([]Resource, len(b.out))
	for i, p := range b.out {
		set[i] = Resource{Type: p.typ, ID: p.id, Body: encode(p)}
	}
	return set
}

// Patients returns the ids of the demo patients, in order. The first is
// the one demo users and docs use by default.
func Patients() []string {
	ids := make([]string, len(roster))
	for i, p := range roster {
		ids[i] = p.id()
	}
	return ids
}

// Practitioners returns the ids of the demo practitioners, in order.
func Practitioners() []string {
	ids := make([]string, len(practitioners))
	for i, p := range practitioners {
		ids[i] = p.id
	}
	return ids
}

// builder collects resources as they are made.
type builder struct {
	out   []pending
	added map[string]bool // "Type/id" of every resource in out
}

// pending is a resource whose body is encoded when the set is complete,
// so the step that made it may still change it.
type pending struct {
	typ, id, profile string
	body             obj
}

// add queues a resource; profile, when not empty, is the name of the US
// Core profile it conforms to.
func (b *builder) add(typ, id, profile string, body obj) {
	b.added[typ+"/"+id] = true
	b.out = append(b.out, pending{typ, id, profile, body})
}

// encode writes resourceType, id and meta first, for people reading the
// JSON, and then the other elements in key order.
func encode(p pending) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Narrative XHTML reads better unescaped; the JSON is just as valid.
	enc.SetEscapeHTML(false)
	write := func(v any) {
		if err := enc.Encode(v); err != nil {
			// Bodies hold only maps, slices, strings, numbers and booleans.
			panic(fmt.Sprintf("devdata: %s/%s: %v", p.typ, p.id, err))
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
	}
	buf.WriteString(`{"resourceType":`)
	write(p.typ)
	buf.WriteString(`,"id":`)
	write(p.id)
	if p.profile != "" {
		buf.WriteString(`,"meta":`)
		write(obj{"profile": []string{usCore + p.profile}})
	}
	rest := buf.Len()
	write(p.body)
	if buf.Len()-rest == len("{}") {
		buf.Truncate(rest)
		buf.WriteString("}")
	} else {
		buf.Bytes()[rest] = ','
	}
	return buf.Bytes()
}
