// Package validate checks that a FHIR R4 (4.0.1) resource in JSON has the
// structure the specification defines, before anything is stored. Every FHIR
// write runs it; a resource with issues is refused with HTTP 400 and an
// OperationOutcome built from the issues.
//
// What it enforces, from the StructureDefinitions of every resource and data
// type (generated into structures.json.gz, see internal/gen) and the JSON
// rules of https://hl7.org/fhir/R4/json.html:
//
//   - The body is one JSON object whose string resourceType names an R4
//     resource type. Resources nested in contained, Bundle.entry.resource,
//     Parameters.parameter.resource and Bundle.entry.response.outcome are
//     checked the same way, by their own resourceType.
//   - Every property is an element of its structure, recursing into data
//     types and backbone elements. Choice elements (value[x]) take exactly
//     one variant named for its type (valueQuantity). A primitive element may
//     have a "_name" sibling holding its id and extensions; for a repeating
//     primitive, both are arrays that line up item for item, with null where
//     one side has nothing. resourceType is allowed only at a resource's
//     root; fhir_comments (DSTU2) is not allowed.
//   - Cardinality: a required element is present; a repeating element
//     (max "*") is a JSON array even with one item, a single one is not;
//     arrays are never empty; nothing is null except those aligned items.
//   - No empty elements: objects have content, strings have non-whitespace
//     content.
//   - Primitives have the JSON type json.html names (boolean: true or false;
//     integer, positiveInt, unsignedInt and decimal: numbers, checked on
//     their literal text; everything else: strings) and match the type's
//     regex from the definitions, anchored at both ends. Integers are
//     32-bit. The id of a resource matches [A-Za-z0-9\-\.]{1,64}.
//   - Extension needs url; its value[x] may be of any type.
//   - Narrative.div (xhtml) must be a string starting with a <div> element.
//     Full XHTML checking (well-formedness, the allowed element and attribute
//     subset) is out of scope.
//
// What it does not enforce: invariants (the FHIRPath constraints of the
// definitions, such as ele-1 or dom-2), terminology bindings (whether a code
// is in its value set), profiles named in meta.profile, calendar validity
// beyond the regexes (2021-02-31 matches the date pattern), and reference
// targets. Those need terminology or a FHIRPath engine and belong to a
// fuller validator.
//
// Issues carry a FHIRPath expression in the R4 form: [index] on repeating
// elements, the JSON name of a choice variant (Observation.valueQuantity),
// and the primitive's own path for its "_name" sibling
// (Patient.birthDate.extension[0]). Inside a nested resource the path goes
// on from the element that holds it, without a type step:
// Bundle.entry[0].resource.name[0].given[0]. Issues about the body as a
// whole (not JSON, not an object, no known resourceType at the root) have an
// empty expression. A missing required element is reported at the path it
// would have (Observation.status; for a choice, its base name, as in
// MedicationRequest.medication).
//
// Issues come in document order (an object's missing elements first, then
// its members in turn), at most 100 of them; then a warning says the rest
// were left out.
package validate

import (
	"strconv"
	"sync"
)

//go:generate go run ./internal/gen -in ../../../../shared/fhir-r4 -out structures.json.gz

// Issue is one problem found. Code is a FHIR IssueType code:
// "structure" (unknown element, wrong JSON shape: an array where one value
// belongs or the reverse, an object where a primitive belongs, an empty
// array or object, a null, a repeated name), "required" (a missing required
// element), "value" (a primitive of the wrong JSON type or format, an empty
// or blank string), "invalid" (anything else: two variants of one choice
// element). When issues were cut short, the last one has Severity "warning"
// and Code "too-costly".
type Issue struct {
	Severity string // "error" (or "warning")
	Code     string
	// Expression is the FHIRPath location, such as "Patient.name[0].given[1]",
	// "Observation.valueQuantity.value" or "Bundle.entry[2].resource"; empty
	// when the issue is about the body as a whole.
	Expression string
	// Diagnostics says in one sentence what is wrong and how to fix it. It
	// never quotes the values of the resource, which may be health data;
	// only element names.
	Diagnostics string
}

// maxIssues caps the issues one resource produces; a final warning says
// that more were not reported.
const maxIssues = 100

// Resource validates one resource given as JSON. It returns the
// resourceType found ("" when absent or not a string, even if unknown) and
// every issue (nil when valid). It never panics.
func Resource(body []byte) (resourceType string, issues []Issue) {
	v := validators.Get().(*validator)
	defer validators.Put(v)
	return v.run(body)
}

// Known reports whether t is an R4 resource type, such as "Observation", so
// callers can tell an unknown type from an invalid resource. Names are
// case-sensitive; the abstract Resource and DomainResource are not known.
func Known(t string) bool {
	return loadSchema().resources[t] != nil
}

// maxPooledNodes bounds the node buffer a pooled validator keeps (about
// 2 MB; a 4 KB resource needs about 500 nodes).
const maxPooledNodes = 1 << 16

// validators keeps parsers' buffers between calls: a write is validated on
// every request, and the node slices are the only sizeable allocation.
var validators = sync.Pool{New: func() any { return new(validator) }}

// validator is the state of one validation.
type validator struct {
	s      *schema
	p      parser
	data   []byte
	nodes  []node
	path   []byte
	slots  []slot
	marks  []mark
	issues []Issue
	full   bool // maxIssues reached; stop walking
}

func (v *validator) run(body []byte) (string, []Issue) {
	v.s = loadSchema()
	v.issues, v.full, v.path = nil, false, v.path[:0]
	root, err := v.p.parse(body)
	if err != nil {
		line, col := lineCol(body, err.off)
		v.report("structure", "The body is not valid JSON: "+err.msg+" at line "+strconv.Itoa(line)+", column "+strconv.Itoa(col)+".")
		return "", v.done()
	}
	v.data, v.nodes = body, v.p.nodes
	if root.kind != kindObject {
		v.report("structure", "The body must be a JSON object holding a FHIR resource, not "+kindName(root.kind)+".")
		return "", v.done()
	}
	rt := v.resource(&root, "Resource", true)
	return rt, v.done()
}

// done returns the issues and lets go of the body, so a pooled validator
// keeps no request data alive.
func (v *validator) done() []Issue {
	issues := v.issues
	v.issues, v.data, v.nodes = nil, nil, nil
	v.slots, v.marks = v.slots[:0], v.marks[:0]
	v.p.trim()
	return issues
}

// trim drops the buffers of a huge body, so that a pooled parser does not
// pin them.
func (p *parser) trim() {
	if cap(p.nodes) > maxPooledNodes {
		p.nodes, p.stack = nil, nil
	}
}

// report records an issue at the current path.
func (v *validator) report(code, diagnostics string) {
	if v.full {
		return
	}
	if len(v.issues) == maxIssues {
		v.full = true
		v.issues = append(v.issues, Issue{
			Severity:    "warning",
			Code:        "too-costly",
			Diagnostics: "More than " + strconv.Itoa(maxIssues) + " issues; the rest are not reported. Fix these and send the resource again.",
		})
		return
	}
	v.issues = append(v.issues, Issue{Severity: "error", Code: code, Expression: string(v.path), Diagnostics: diagnostics})
}

// push extends the path with a name ("." name) and returns the length to
// pop back to.
func (v *validator) push(name []byte) int {
	n := len(v.path)
	if n > 0 {
		v.path = append(v.path, '.')
	}
	v.path = append(v.path, clip(name)...)
	return n
}

// pushIndex extends the path with "[i]".
func (v *validator) pushIndex(i int) int {
	n := len(v.path)
	v.path = append(v.path, '[')
	v.path = strconv.AppendInt(v.path, int64(i), 10)
	v.path = append(v.path, ']')
	return n
}

func (v *validator) pop(n int) { v.path = v.path[:n] }

// lineCol turns a byte offset into a 1-based line and column.
func lineCol(b []byte, off int) (line, col int) {
	line, col = 1, 1
	for i := 0; i < off && i < len(b); i++ {
		if b[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}
