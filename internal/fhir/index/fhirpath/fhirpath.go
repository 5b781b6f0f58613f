// Package fhirpath evaluates the subset of FHIRPath (HL7 FHIRPath N1,
// http://hl7.org/fhirpath/N1/) that the FHIR R4 and US Core 6.1.0 search
// parameters of the server's resource types use, over resources decoded by
// encoding/json with UseNumber (map[string]any, []any, string, json.Number,
// bool).
//
// The subset:
//
//   - path navigation (Observation.component.code), where a name that starts
//     with an upper-case letter at the start of a path selects the focus when
//     it is a resource of that type; a choice element (package spec knows
//     their names, from the StructureDefinitions) navigates to whichever of
//     its typed forms is present (Observation.value finds valueQuantity, and
//     remembers the type "Quantity");
//   - the union operator |, parentheses, and, = and !=;
//   - is and as as operators, and the functions as(T), ofType(T), where(c),
//     exists(), resolve() and extension(url);
//   - string, number and boolean literals and $this.
//
// resolve() does not fetch anything: it yields the Reference itself typed as
// the resource type its reference names ("Patient/1" or
// "http://x/fhir/Patient/1" give Patient; a reference without one falls back
// to Reference.type), which is all that "resolve() is Patient" needs.
// Anything outside the subset (or, xor, implies, arithmetic, comparisons,
// indexers, other functions) is a parse error, so a new expression cannot be
// half-understood silently. Every search-parameter and composite-component
// expression of the supported types parses; none is skipped
// (TestExpressionsParse in package index holds that).
package fhirpath

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"smartgate/internal/fhir/spec"
)

// Item is one element of a collection.
type Item struct {
	Value any // map[string]any, string, json.Number or bool
	// Type is the FHIR type when the path knows it: the suffix of a choice
	// element ("Quantity" for valueQuantity, "DateTime" for
	// effectiveDateTime) or the type resolve() found; "" otherwise.
	Type string
}

// Expr is a parsed expression, safe for concurrent use.
type Expr struct {
	src  string
	root node
}

// String returns the expression's source text.
func (e *Expr) String() string { return e.src }

// Eval evaluates e with the resource as its focus. Evaluation never
// modifies its input.
func (e *Expr) Eval(resource map[string]any) []Item {
	return e.root.eval([]Item{{Value: resource}})
}

// EvalItems evaluates e with focus as its input collection (for the
// relative expressions of composite components).
func (e *Expr) EvalItems(focus []Item) []Item { return e.root.eval(focus) }

// node is one piece of a parsed expression: it maps the focus collection
// to the result collection.
type node interface {
	eval(focus []Item) []Item
}

// path applies its steps in turn, each to the previous step's result.
type path []node

func (p path) eval(focus []Item) []Item {
	for _, n := range p {
		focus = n.eval(focus) // not cut short when empty: exists() is false then
	}
	return focus
}

// member navigates to a child element of each item. A choice element
// (spec.ChoiceElement) that is not present under its own name is looked
// for in its typed forms; knowing which names those are at parse time
// spares the search of every object's keys for every absent element.
type member struct {
	name   string
	choice bool
}

func newMember(name string) member { return member{name, spec.ChoiceElement(name)} }

func (m member) eval(focus []Item) []Item {
	var out []Item
	for _, it := range focus {
		obj, ok := it.Value.(map[string]any)
		if !ok {
			continue
		}
		if v, ok := obj[m.name]; ok {
			out = appendValue(out, v, "")
		} else if m.choice {
			out = choiceForms(out, obj, m.name)
		}
	}
	return out
}

// choiceForms appends the typed forms of the choice element name[x]
// present in obj: valueQuantity for value, typed "Quantity".
func choiceForms(out []Item, obj map[string]any, name string) []Item {
	var keys []string
	for k := range obj {
		if len(k) > len(name) && strings.HasPrefix(k, name) && choiceTypes[k[len(name):]] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys) // only invalid JSON has two; keep the result stable
	for _, k := range keys {
		out = appendValue(out, obj[k], k[len(name):])
	}
	return out
}

func appendValue(out []Item, v any, typ string) []Item {
	switch v := v.(type) {
	case nil:
	case []any:
		for _, e := range v {
			if e != nil {
				out = append(out, Item{Value: e, Type: typ})
			}
		}
	default:
		out = append(out, Item{Value: v, Type: typ})
	}
	return out
}

// choiceTypes are the type suffixes a choice element name[x] takes in JSON
// (FHIR R4 §2.24.0.1 "Choice of data types": the primitive and general
// purpose types, plus the metadata types, Dosage and Meta).
var choiceTypes = setOf(`Base64Binary Boolean Canonical Code Date DateTime Decimal Id
	Instant Integer Markdown Oid PositiveInt String Time UnsignedInt Uri Url Uuid
	Address Age Annotation Attachment CodeableConcept Coding ContactPoint Count Distance
	Duration HumanName Identifier Money Period Quantity Range Ratio Reference SampledData
	Signature Timing ContactDetail Contributor DataRequirement Expression
	ParameterDefinition RelatedArtifact TriggerDefinition UsageContext Dosage Meta`)

func setOf(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// typeRoot selects the items that are resources of its type: the first
// name of "Observation.code".
type typeRoot string

func (t typeRoot) eval(focus []Item) []Item {
	var out []Item
	for _, it := range focus {
		if obj, ok := it.Value.(map[string]any); ok && obj["resourceType"] == string(t) {
			out = append(out, it)
		}
	}
	return out
}

// this is $this: the focus itself.
type this struct{}

func (this) eval(focus []Item) []Item { return focus }

// literal is a constant.
type literal struct{ v any }

func (l literal) eval([]Item) []Item { return []Item{{Value: l.v}} }

// union is a | b (duplicates are kept: the indexer removes them).
type union struct{ a, b node }

func (u union) eval(focus []Item) []Item {
	// Clip: a may be the focus itself ($this), which must not change.
	return append(slices.Clip(u.a.eval(focus)), u.b.eval(focus)...)
}

// equality is a = b, or a != b when neg.
type equality struct {
	a, b node
	neg  bool
}

func (e equality) eval(focus []Item) []Item {
	l, r := e.a.eval(focus), e.b.eval(focus)
	if len(l) == 0 || len(r) == 0 {
		return nil
	}
	eq := len(l) == len(r)
	for i := 0; eq && i < len(l); i++ {
		eq = equal(l[i].Value, r[i].Value)
	}
	return []Item{{Value: eq != e.neg}}
}

// equal compares two primitive values; values of different kinds differ.
func equal(a, b any) bool {
	switch a := a.(type) {
	case string:
		b, ok := b.(string)
		return ok && a == b
	case bool:
		b, ok := b.(bool)
		return ok && a == b
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		x, err1 := a.Float64()
		y, err2 := b.Float64()
		return err1 == nil && err2 == nil && x == y
	}
	return false
}

// and is FHIRPath's three-valued and.
type and struct{ a, b node }

func (n and) eval(focus []Item) []Item {
	l, lok := boolean(n.a.eval(focus))
	r, rok := boolean(n.b.eval(focus))
	switch {
	case lok && !l, rok && !r:
		return []Item{{Value: false}}
	case lok && rok:
		return []Item{{Value: true}}
	}
	return nil
}

// boolean is the singleton evaluation of a collection as a boolean: empty
// is unknown, a single boolean is itself, any other single item is true.
func boolean(c []Item) (value, known bool) {
	if len(c) != 1 {
		return false, false
	}
	if b, ok := c[0].Value.(bool); ok {
		return b, true
	}
	return true, true
}

// isType is x is T: true or false for a single item, empty otherwise.
type isType struct {
	x   node
	typ string
}

func (n isType) eval(focus []Item) []Item {
	c := n.x.eval(focus)
	if len(c) != 1 {
		return nil
	}
	return []Item{{Value: hasType(c[0], n.typ)}}
}

// ofType is x as T, x.as(T) and x.ofType(T): the items of type T. FHIRPath
// makes as() on a collection of several items an error; the search
// expressions only apply it to single elements, so it filters like ofType.
type ofType string

func (t ofType) eval(focus []Item) []Item {
	var out []Item
	for _, it := range focus {
		if hasType(it, string(t)) {
			out = append(out, it)
		}
	}
	return out
}

// asType is the operator form x as T.
type asType struct {
	x   node
	typ ofType
}

func (n asType) eval(focus []Item) []Item { return n.typ.eval(n.x.eval(focus)) }

// hasType reports whether it is of FHIR type typ. Items whose type the
// path does not know are judged by their JSON kind.
func hasType(it Item, typ string) bool {
	if it.Type != "" {
		return strings.EqualFold(it.Type, typ)
	}
	switch it.Value.(type) {
	case bool:
		return strings.EqualFold(typ, "boolean")
	case json.Number:
		return numberTypes[strings.ToLower(typ)]
	case string:
		return stringTypes[strings.ToLower(typ)]
	case map[string]any:
		obj := it.Value.(map[string]any)
		if rt, ok := obj["resourceType"].(string); ok {
			return rt == typ
		}
		return typ != "" && 'A' <= typ[0] && typ[0] <= 'Z' && !stringTypes[strings.ToLower(typ)] && !numberTypes[strings.ToLower(typ)] && !strings.EqualFold(typ, "boolean")
	}
	return false
}

// The FHIR primitive types by JSON kind, lower-cased.
var (
	numberTypes = setOf("integer decimal positiveint unsignedint")
	stringTypes = setOf("string code id markdown uri url canonical oid uuid base64binary date datetime instant time")
)

// where keeps the items for which the criteria are true.
type where struct{ crit node }

func (w where) eval(focus []Item) []Item {
	var out []Item
	for _, it := range focus {
		if b, ok := boolean(w.crit.eval([]Item{it})); ok && b {
			out = append(out, it)
		}
	}
	return out
}

// exists is exists(): whether the focus has any item.
type exists struct{}

func (exists) eval(focus []Item) []Item { return []Item{{Value: len(focus) > 0}} }

// extension is extension(url): the extensions of each item with that url.
type extension string

func (e extension) eval(focus []Item) []Item {
	var out []Item
	for _, ext := range newMember("extension").eval(focus) {
		if obj, ok := ext.Value.(map[string]any); ok && obj["url"] == string(e) {
			out = append(out, ext)
		}
	}
	return out
}

// resolve types each Reference (or canonical) by the resource type it
// names, without fetching it.
type resolve struct{}

func (resolve) eval(focus []Item) []Item {
	var out []Item
	for _, it := range focus {
		var ref, typ string
		switch v := it.Value.(type) {
		case string:
			ref = v
		case map[string]any:
			ref, _ = v["reference"].(string)
			typ, _ = v["type"].(string)
		}
		if t := ReferenceType(ref); t != "" {
			typ = t
		}
		if typ != "" {
			out = append(out, Item{Value: it.Value, Type: typ})
		}
	}
	return out
}

// ReferenceType returns the resource type a literal reference names:
// "Patient" for "Patient/1", "Patient/1/_history/2" and
// "https://example.org/fhir/Patient/1"; "" for a contained ("#x"),
// urn:uuid: or other reference that names none.
func ReferenceType(ref string) string {
	if ref == "" || ref[0] == '#' || strings.HasPrefix(ref, "urn:") {
		return ""
	}
	if i := strings.Index(ref, "?"); i >= 0 {
		ref = ref[:i]
	}
	segs := strings.Split(ref, "/")
	if n := len(segs); n >= 4 && segs[n-2] == "_history" {
		segs = segs[:n-2]
	}
	if n := len(segs); n >= 2 && isTypeName(segs[n-2]) && segs[n-1] != "" {
		return segs[n-2]
	}
	return ""
}

// isTypeName reports whether s looks like a resource type name.
func isTypeName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// Must is Parse for expressions known to be valid; it panics on an error.
func Must(src string) *Expr {
	e, err := Parse(src)
	if err != nil {
		panic(err)
	}
	return e
}

// Parse parses src.
func Parse(src string) (*Expr, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, fmt.Errorf("fhirpath %q: %w", src, err)
	}
	p := &parser{toks: toks}
	root, err := p.expr()
	if err == nil && p.peek().kind != tEOF {
		err = fmt.Errorf("unexpected %s", p.peek())
	}
	if err != nil {
		return nil, fmt.Errorf("fhirpath %q: %w", src, err)
	}
	return &Expr{src: src, root: root}, nil
}
