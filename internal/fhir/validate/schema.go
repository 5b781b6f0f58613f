package validate

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
)

// structures.json.gz holds the element trees of the FHIR R4 resources and
// data types, and the primitive types' JSON forms and value patterns. It is
// generated from the official definitions; internal/gen says how and from
// which files.
//
//go:embed structures.json.gz
var structuresGz []byte

// schemaFile is the generated document (the same shape internal/gen writes).
type schemaFile struct {
	FHIRVersion string `json:"fhirVersion"`
	Primitives  []struct {
		Name         string `json:"name"`
		JSON         string `json:"json"`
		Regex        string `json:"regex"`
		NoExtensions bool   `json:"noExtensions"`
	} `json:"primitives"`
	Types     []schemaStructure `json:"types"`
	Resources []schemaStructure `json:"resources"`
}

type schemaStructure struct {
	Name     string `json:"name"`
	Elements []struct {
		Path string   `json:"p"`
		Min  int      `json:"min"`
		Max  string   `json:"max"`
		Type []string `json:"t"`
		Ref  string   `json:"ref"`
		Sum  bool     `json:"sum"`
	} `json:"elements"`
}

// jsonKind is the JSON type that carries a primitive value.
type jsonKind uint8

const (
	jsonString jsonKind = iota
	jsonNumber
	jsonBoolean
)

// primType is a FHIR primitive type.
type primType struct {
	name    string
	json    jsonKind
	pattern string            // the regex from the definitions
	match   func([]byte) bool // the value pattern, anchored; nil for xhtml
	noExt   bool              // no "_name" sibling (xhtml)
	// For integer, positiveInt and unsignedInt: the value range (all are
	// 32-bit, https://hl7.org/fhir/R4/datatypes.html#primitive).
	integer bool
	lowest  int64
}

// typeRef is one type an element may take.
type typeRef struct {
	name     string
	prim     *primType  // a primitive type
	st       *structDef // a complex type or an inline backbone element
	resource bool       // a nested resource: any ("Resource") or the one named
}

// elemDef is one element of a structure.
type elemDef struct {
	name   string // the JSON name, or the base name of a choice ("value")
	min    int
	many   bool // max "*": always a JSON array
	choice bool // name[x]
	sum    bool // ElementDefinition.isSummary
	types  []typeRef
}

// field is what a JSON property name means in a structure: an element, and
// the type a choice variant selects.
type field struct {
	e *elemDef
	t *typeRef
}

// structDef is a resource, a complex type or a backbone element.
type structDef struct {
	name     string // "Patient", "HumanName", "Patient.contact"
	resource bool
	fields   map[string]field // JSON names, choice variants spelt out
	elems    []*elemDef
	required []*elemDef
	// For resources: the JSON names of the top-level summary and
	// mandatory elements, sorted (see SummaryElements).
	summary, mandatory []string
}

// schema is the loaded data, shared by every validation.
type schema struct {
	fhirVersion string
	prims       map[string]*primType
	resources   map[string]*structDef
	element     *structDef // Element: the shape of a "_name" sibling
}

// loadSchema decodes the embedded data once, on first use, and compiles the
// primitive patterns. The data is generated and tested, so a failure here is
// a build defect, not a property of the input being validated.
var loadSchema = sync.OnceValue(func() *schema {
	s, err := buildSchema(structuresGz)
	if err != nil {
		panic("validate: embedded structures.json.gz: " + err.Error())
	}
	return s
})

func buildSchema(gz []byte) (*schema, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	var f schemaFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, err
	}
	prims := map[string]*primType{}
	for _, p := range f.Primitives {
		pt := &primType{name: p.Name, pattern: p.Regex, noExt: p.NoExtensions}
		switch p.JSON {
		case "string":
			pt.json = jsonString
		case "number":
			pt.json = jsonNumber
		case "boolean":
			pt.json = jsonBoolean
		default:
			return nil, fmt.Errorf("primitive %s: JSON form %q", p.Name, p.JSON)
		}
		switch p.Name {
		case "integer":
			pt.integer, pt.lowest = true, -1<<31
		case "unsignedInt":
			pt.integer, pt.lowest = true, 0
		case "positiveInt":
			pt.integer, pt.lowest = true, 1
		}
		if p.Regex != "" {
			// The regexes in the definitions match whole values.
			rx, err := regexp.Compile(`^(?:` + p.Regex + `)$`)
			if err != nil {
				return nil, fmt.Errorf("primitive %s: %w", p.Name, err)
			}
			if pt.match = fastMatchers[p.Regex]; pt.match == nil {
				pt.match = rx.Match
			}
		}
		prims[p.Name] = pt
	}

	// Every named structure first, so element types can point at them.
	named := map[string]*structDef{}
	s := &schema{fhirVersion: f.FHIRVersion, prims: prims, resources: map[string]*structDef{}}
	for _, d := range f.Types {
		named[d.Name] = &structDef{name: d.Name}
	}
	for _, d := range f.Resources {
		st := &structDef{name: d.Name, resource: true}
		named[d.Name] = st
		s.resources[d.Name] = st
	}
	b := builder{prims: prims, named: named, resources: s.resources}
	for _, list := range [][]schemaStructure{f.Types, f.Resources} {
		for _, d := range list {
			if err := b.fill(named[d.Name], d); err != nil {
				return nil, err
			}
		}
	}
	if s.element = named["Element"]; s.element == nil || len(s.resources) == 0 {
		return nil, fmt.Errorf("no Element type or no resources")
	}
	return s, nil
}

type builder struct {
	prims     map[string]*primType
	named     map[string]*structDef
	resources map[string]*structDef
}

// fill builds the element tree of one structure from its flat element list:
// an element with children listed after it (a backbone element) gets a
// structure of its own, and a contentReference shares the structure of the
// element it names.
func (b *builder) fill(root *structDef, d schemaStructure) error {
	backbone := map[string]*structDef{"": root}
	for _, e := range d.Elements {
		if i := strings.LastIndexByte(e.Path, '.'); i >= 0 {
			parent := e.Path[:i]
			if backbone[parent] == nil {
				backbone[parent] = &structDef{name: d.Name + "." + parent}
			}
		}
	}
	type pending struct {
		t   *typeRef
		ref string
	}
	var refs []pending
	for _, e := range d.Elements {
		parent, name := "", e.Path
		if i := strings.LastIndexByte(e.Path, '.'); i >= 0 {
			parent, name = e.Path[:i], e.Path[i+1:]
		}
		st := backbone[parent]
		ed := &elemDef{name: name, min: e.Min, many: e.Max == "*", sum: e.Sum}
		if base, ok := strings.CutSuffix(name, "[x]"); ok {
			ed.name, ed.choice = base, true
		}
		if e.Ref != "" {
			ed.types = []typeRef{{name: "BackboneElement"}}
			refs = append(refs, pending{&ed.types[0], e.Ref})
		}
		for _, t := range e.Type {
			tr := typeRef{name: t}
			switch {
			case b.prims[t] != nil:
				tr.prim = b.prims[t]
			case t == "Resource" || b.resources[t] != nil:
				tr.resource = true
			case backbone[e.Path] != nil:
				tr.st = backbone[e.Path] // Element or BackboneElement, defined inline
			case b.named[t] != nil:
				tr.st = b.named[t]
			default:
				return fmt.Errorf("%s.%s: unknown type %s", d.Name, e.Path, t)
			}
			ed.types = append(ed.types, tr)
		}
		if len(ed.types) == 0 || (len(ed.types) > 1 && !ed.choice) {
			return fmt.Errorf("%s.%s: %d types", d.Name, e.Path, len(ed.types))
		}
		if st.fields == nil {
			st.fields = map[string]field{}
		}
		for i := range ed.types {
			st.fields[ed.jsonName(i)] = field{e: ed, t: &ed.types[i]}
		}
		st.elems = append(st.elems, ed)
		if ed.min > 0 {
			st.required = append(st.required, ed)
		}
	}
	for _, r := range refs {
		if r.t.st = backbone[r.ref]; r.t.st == nil || r.t.st == root {
			return fmt.Errorf("%s: contentReference to %s, which has no elements", d.Name, r.ref)
		}
	}
	if root.resource {
		root.summary = jsonNames(root.elems, func(e *elemDef) bool { return e.sum })
		root.mandatory = jsonNames(root.elems, func(e *elemDef) bool { return e.min > 0 })
	}
	return nil
}

// jsonName is the JSON property name of the element with its i-th type: the
// name itself, or for a choice the base name and the type with its first
// letter upper-cased (https://hl7.org/fhir/R4/formats.html#choice).
func (e *elemDef) jsonName(i int) string {
	if !e.choice {
		return e.name
	}
	t := e.types[i].name
	return e.name + strings.ToUpper(t[:1]) + t[1:]
}

// fastMatchers are byte loops equivalent to the simplest patterns, which
// are also the most frequent (string, markdown, uri, url, canonical, code):
// regexp spent over half the validation time on them. They are keyed by the
// exact regex text, so a changed pattern falls back to regexp. RE2's \s is
// [\t\n\f\r ] and \S any other rune, so on UTF-8 text a byte test decides
// as the regex does; TestFastMatchers checks them against regexp.
var fastMatchers = map[string]func([]byte) bool{
	// string, markdown: anything but a form feed, at least one character.
	`[ \r\n\t\S]+`: func(b []byte) bool { return len(b) > 0 && bytes.IndexByte(b, '\f') < 0 },
	// uri, url, canonical: no whitespace.
	`\S*`: func(b []byte) bool {
		for _, c := range b {
			if isSpace(c) {
				return false
			}
		}
		return true
	},
	// code: words separated by single whitespace characters.
	`[^\s]+(\s[^\s]+)*`: func(b []byte) bool {
		if len(b) == 0 || isSpace(b[0]) || isSpace(b[len(b)-1]) {
			return false
		}
		for i := 1; i < len(b); i++ {
			if isSpace(b[i]) && isSpace(b[i-1]) {
				return false
			}
		}
		return true
	},
}

// isSpace is RE2's \s.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}
