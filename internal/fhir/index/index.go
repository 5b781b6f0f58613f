// Package index computes what one FHIR resource contributes to search: the
// index rows of every search parameter of its type (package spec's
// definitions, evaluated with the FHIRPath subset in package fhirpath) and
// the patients whose compartment holds it.
//
// Each parameter's values become rows by its type, as FHIR R4 §3.1.1.4
// (search.html#ptypes) describes:
//
//   - token: a Coding gives its system, code and display (as Text); a
//     CodeableConcept each of its codings, plus a row with only its text; an
//     Identifier its system and value (Text from type.text); a ContactPoint
//     its system (phone, email...) and value, as HAPI FHIR does, so that
//     phone=555 and telecom=phone|555 both work; code, string, id and uri
//     values their Code with no System; a boolean "true" or "false" (so
//     Patient deceased, whose expression is a boolean test, gives "false" for
//     a Patient without deceased[x], and deceased=false finds the living).
//   - string: a string value; a HumanName its family, each given, prefix and
//     suffix, and text; an Address each line, city, district, state,
//     postalCode, country and text. Norm is Normalize(value), Exact the value.
//   - reference: "Type/id" and "Type/id/_history/v" (the version dropped),
//     and absolute URLs under the server's base, give Type and ID; any other
//     absolute URL, urn:uuid: or urn:oid: gives URL; a contained "#x" is
//     skipped; Reference.identifier gives one row of IdentSystem and
//     IdentValue (with Type from Reference.type); a canonical gives URL, and a
//     second row without its "|version" when it has one.
//   - date: date, dateTime and instant give DateRange; a Period [start's low,
//     end's high) with an open end at math.MinInt64 or math.MaxInt64; a Timing
//     each event and its repeat.boundsPeriod. Unparseable dates are skipped.
//   - quantity: Quantity and its kinds (Age, Duration, Distance, Count,
//     SimpleQuantity) give value, system, code and unit; Money value and
//     currency (as Code, System "urn:iso:std:iso:4217"); a Range one row for
//     low and one for high, each compared on its own; SampledData is skipped.
//   - number: integer and decimal values. uri: uri, url and canonical values,
//     plus the form without "|version".
//
// Identical rows are stored once; each slice of the result is sorted.
//
// Not indexed, on purpose (the store has no table or column work for them):
// _id and _lastUpdated (the store keeps them as columns); composite
// parameters (Observation code-value-concept, code-value-date,
// code-value-quantity, code-value-string, combo-code-value-concept,
// combo-code-value-quantity, component-code-value-concept,
// component-code-value-quantity; DocumentReference relationship; Group
// characteristic-value), as the store has no composite table yet; the
// special parameter Location near; and the resources inside "contained".
// package spec leaves out _text, _content and _query altogether. The
// phonetic parameters (Patient and Organization phonetic) are indexed like
// name: how to match them is the query side's choice.
//
// Compartments (FHIR R4 compartmentdefinition-patient): a resource is in
// the compartment of every Patient that the compartment's parameters for
// its type reference by id (a reference by identifier only names no
// patient). A Patient is in its own compartment only: the definition's
// "link" parameter would pull in the patients it links to, which the server
// does not do. Three rules the definition leaves open: a Device is in its
// patient's (Device.patient); a Binary is in the compartment of the
// Patient its securityContext references directly (a securityContext that
// is another resource does not make it any patient's); and a
// DocumentReference puts every Binary its content.attachment.url points at
// ("Binary/1", or base+"/Binary/1") into its own patients' compartments,
// as Index.Links.
package index

import (
	"errors"
	"fmt"
	"strings"

	"smartgate/internal/fhir/index/fhirpath"
	"smartgate/internal/fhir/spec"
	"smartgate/internal/fhir/validate"
	"smartgate/internal/store"
)

// Errors of Extract.
var (
	ErrUnsupported = errors.New("index: unsupported resource type")
	ErrMalformed   = errors.New("index: malformed resource")
)

// param is a search parameter ready to evaluate.
type param struct {
	code string
	typ  spec.ParamType
	expr *fhirpath.Expr
}

// typeInfo is what Extract needs for one resource type.
type typeInfo struct {
	params      []param
	compartment []string // reference parameters that name its patients
}

// types is built once from package spec; an expression that does not parse
// is a bug in the generated tables, which the tests catch.
var types = compile()

func compile() map[string]typeInfo {
	m := map[string]typeInfo{}
	for _, typ := range spec.Types() {
		ti := typeInfo{compartment: spec.CompartmentParams(typ)}
		switch typ {
		case "Device":
			ti.compartment = []string{"patient"}
		case "Patient":
			ti.compartment = nil // its own id only
		}
		for _, p := range spec.Params(typ) {
			if indexed(p) {
				ti.params = append(ti.params, param{p.Code, p.Type, fhirpath.Must(p.Expression)})
			}
		}
		m[typ] = ti
	}
	return m
}

func indexed(p spec.Param) bool {
	return p.Code != "_id" && p.Code != "_lastUpdated" && p.Type != spec.Composite && p.Type != spec.Special
}

// Indexed reports whether Extract writes rows for the search parameter code
// of typ; false for _id and _lastUpdated (store columns), composite and
// special parameters, and codes typ does not have.
func Indexed(typ, code string) bool {
	p, ok := spec.Lookup(typ, code)
	return ok && indexed(p)
}

// Extract returns the index rows for one resource (the JSON body of a
// resource of type typ, already validated), the ids of the patients whose
// compartment holds it, and the memberships it gives to others (Links).
// base is the server's FHIR base URL (e.g. "http://127.0.0.1:8080/fhir"):
// absolute references that start with base+"/" are local.
func Extract(typ string, body []byte, base string) (store.Index, error) {
	ti, ok := types[typ]
	if !ok {
		return store.Index{}, fmt.Errorf("%w: %q", ErrUnsupported, typ)
	}
	res, err := decode(body)
	if err != nil {
		return store.Index{}, err
	}
	if rt, _ := res["resourceType"].(string); rt != typ {
		return store.Index{}, fmt.Errorf("%w: resourceType %q, want %q", ErrMalformed, rt, typ)
	}
	b := builder{base: strings.TrimSuffix(base, "/")}
	focus := []fhirpath.Item{{Value: res}} // shared: evaluation never changes its input
	for _, p := range ti.params {
		for _, it := range p.expr.EvalItems(focus) {
			b.add(p, it)
		}
	}
	b.compartments(typ, ti.compartment, res)
	b.finish()
	return b.idx, nil
}

// decode reads one JSON object, numbers as json.Number.
func decode(body []byte) (map[string]any, error) {
	res, err := validate.Decode(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return res, nil
}

// compartments fills Patients and Links.
func (b *builder) compartments(typ string, params []string, res map[string]any) {
	switch typ {
	case "Patient":
		if id, _ := res["id"].(string); id != "" {
			b.idx.Patients = append(b.idx.Patients, id)
		}
	case "Binary":
		if sc, ok := res["securityContext"].(map[string]any); ok {
			ref, _ := sc["reference"].(string)
			if t, id, ok := SplitReference(ref, b.base); ok && t == "Patient" {
				b.idx.Patients = append(b.idx.Patients, id)
			}
		}
	}
	for _, r := range b.idx.Refs {
		if r.Type == "Patient" && r.ID != "" && contains(params, r.Param) {
			b.idx.Patients = append(b.idx.Patients, r.ID)
		}
	}
	if typ != "DocumentReference" || len(b.idx.Patients) == 0 {
		return
	}
	for _, c := range array(res["content"]) {
		att, _ := object(c)["attachment"].(map[string]any)
		url, _ := att["url"].(string)
		if t, id, ok := SplitReference(url, b.base); ok && t == "Binary" {
			for _, p := range b.idx.Patients {
				b.idx.Links = append(b.idx.Links, store.Membership{Type: "Binary", ID: id, Patient: p})
			}
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// SplitReference returns the type and id of a literal reference to this
// server: "Type/id", "Type/id/_history/v", or either under base+"/". ok is
// false for anything else (other servers' URLs, urn:uuid:, "#contained",
// conditional references). The query side uses it for reference search
// values too.
func SplitReference(ref, base string) (typ, id string, ok bool) {
	if base = strings.TrimSuffix(base, "/"); base != "" && strings.HasPrefix(ref, base+"/") {
		ref = ref[len(base)+1:]
	}
	typ = fhirpath.ReferenceType(ref)
	if typ == "" || !strings.HasPrefix(ref, typ) || len(ref) <= len(typ) || ref[len(typ)] != '/' {
		return "", "", false // not relative, or no type
	}
	id, version, versioned := strings.Cut(ref[len(typ)+1:], "/")
	if versioned {
		v, ok := strings.CutPrefix(version, "_history/")
		if !ok || !validID(v) {
			return "", "", false
		}
	}
	if !validID(id) {
		return "", "", false
	}
	return typ, id, true
}

// validID reports whether s is a FHIR id: [A-Za-z0-9\-\.]{1,64}.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
