package validate

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The diagnostics below run only when there is something to report. They
// name elements and types, never values from the resource.

// maxName caps how much of a client-chosen member name goes into an
// expression or a diagnostic.
const maxName = 64

// clip shortens a name to maxName bytes at a rune boundary.
func clip(name []byte) []byte {
	if len(name) <= maxName {
		return name
	}
	cut := maxName
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return append(name[:cut:cut], "…"...)
}

func kindName(k nodeKind) string {
	switch k {
	case kindNull:
		return "null"
	case kindTrue, kindFalse:
		return "a boolean"
	case kindNumber:
		return "a number"
	case kindString:
		return "a string"
	case kindObject:
		return "an object"
	}
	return "an array"
}

// article puts "a" or "an" before a type name.
func article(t string) string {
	if strings.ContainsRune("aeiouAEIOU", rune(t[0])) {
		return "an " + t
	}
	return "a " + t
}

// formats says what a valid value of each primitive type looks like.
var formats = map[string]string{
	"base64Binary": "base64-encoded data",
	"canonical":    "a URI without whitespace",
	"code":         "a code: no leading, trailing or doubled whitespace",
	"date":         "a date: YYYY, YYYY-MM or YYYY-MM-DD, e.g. 2024-01-31",
	"dateTime":     "a dateTime: YYYY, YYYY-MM, YYYY-MM-DD, or YYYY-MM-DDThh:mm:ss with a time zone (Z or +hh:mm), e.g. 2024-01-31T09:30:00Z",
	"decimal":      "a decimal number",
	"id":           "an id: 1 to 64 letters, digits, '-' or '.'",
	"instant":      "an instant: YYYY-MM-DDThh:mm:ss with optional fractions and a time zone (Z or +hh:mm), e.g. 2024-01-31T09:30:00.000Z",
	"integer":      "a whole number from -2147483648 to 2147483647, without fraction or exponent",
	"markdown":     "markdown text without control characters other than tab, CR and LF",
	"oid":          "an OID URI such as urn:oid:2.16.840.1.113883",
	"positiveInt":  "a whole number from 1 to 2147483647, without fraction or exponent",
	"string":       "text without control characters other than tab, CR and LF",
	"time":         "a time of day: hh:mm:ss with optional fractions, e.g. 09:30:00",
	"unsignedInt":  "a whole number from 0 to 2147483647, without fraction or exponent",
	"uri":          "a URI without whitespace",
	"url":          "a URL without whitespace",
	"uuid":         "a UUID URI such as urn:uuid:c757873d-ec9a-4326-a141-556f43239520 (lower case)",
}

func formatDiag(p *primType, name []byte) string {
	want := formats[p.name]
	if want == "" {
		want = "a valid " + p.name
	}
	return "'" + string(clip(name)) + "' is not a valid " + p.name + "; write " + want + "."
}

func requiredDiag(st *structDef, e *elemDef) string {
	what := "'" + e.name + "'"
	if e.choice {
		what = "'" + e.name + "[x]' (one of " + variants(e, 6) + ")"
	}
	return st.name + " requires " + what + "; add it."
}

func conflictDiag(s slot, k []byte) string {
	first := s.e.name + upperFirst(s.t.name)
	return "'" + string(clip(k)) + "' and '" + first + "' are both given, but " + s.e.name + "[x] takes one type; keep only one of them."
}

func upperFirst(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

// variants lists up to max JSON names of a choice element.
func variants(e *elemDef, max int) string {
	names := make([]string, 0, len(e.types))
	for _, t := range e.types {
		names = append(names, e.name+upperFirst(t.name))
	}
	return list(names, max)
}

// list joins names, naming at most max of them.
func list(names []string, max int) string {
	if len(names) <= max {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:max], ", ") + " and " + strconv.Itoa(len(names)-max) + " more"
}

// inherited are the elements every resource or backbone element has; the
// list of allowed names puts them last, after the ones that say what the
// structure is about.
var inherited = []string{"id", "meta", "implicitRules", "language", "text", "contained", "extension", "modifierExtension"}

func unknownElementDiag(st *structDef, k []byte) string {
	name := string(clip(k))
	if name == "fhir_comments" {
		return "'fhir_comments' is not allowed in FHIR R4 JSON (it was dropped after DSTU2); remove it."
	}
	if base, ok := strings.CutPrefix(name, "_"); ok {
		if f, ok := st.fields[base]; ok && f.t.prim != nil {
			return "'" + name + "' is not allowed: " + base + " is of type " + f.t.name + ", which takes no extensions; remove it."
		} else if ok {
			return "'" + name + "' is allowed only beside primitive elements, and " + base + " is of type " + f.t.name +
				"; put its extensions inside " + base + " instead."
		}
	}
	for _, e := range st.elems {
		if rest, ok := strings.CutPrefix(name, e.name); ok && e.choice && rest != "" && rest[0] >= 'A' && rest[0] <= 'Z' {
			return "'" + name + "' is not a type " + e.name + "[x] takes in " + st.name + "; use one of " + variants(e, 12) + "."
		}
	}
	if s := suggestField(st, name); s != "" {
		return "Unknown element '" + name + "' in " + st.name + "; did you mean '" + s + "'?"
	}
	var own, base []string
	for _, e := range st.elems {
		n := e.name
		if e.choice {
			n += "[x]"
		}
		if slices.Contains(inherited, n) {
			base = append(base, n)
		} else {
			own = append(own, n)
		}
	}
	return "Unknown element '" + name + "' in " + st.name + "; remove it or check its spelling (allowed here: " + list(append(own, base...), 20) + ")."
}

// suggestField returns the JSON name in st that name most likely meant: one
// that differs only in case, or by one edit.
func suggestField(st *structDef, name string) string {
	best := ""
	for f := range st.fields {
		switch {
		case strings.EqualFold(f, name):
			return f
		case best == "" || f < best: // deterministic among equals
			if oneEdit(f, name) {
				best = f
			}
		}
	}
	return best
}

func unknownTypeDiag(s *schema, name string) string {
	msg := "Unknown resource type '" + string(clip([]byte(name))) + "'; FHIR R4 does not define it"
	best := ""
	for t := range s.resources {
		if strings.EqualFold(t, name) {
			best = t
			break
		}
		if oneEdit(t, name) && (best == "" || t < best) {
			best = t
		}
	}
	if best != "" {
		return msg + " (did you mean '" + best + "'?)."
	}
	return msg + "."
}

// oneEdit reports whether a and b differ by exactly one inserted, deleted,
// replaced or swapped character (bytes; names here are ASCII).
func oneEdit(a, b string) bool {
	if len(a) < len(b) {
		a, b = b, a
	}
	if len(a)-len(b) > 1 || a == b {
		return false
	}
	i := 0
	for i < len(b) && a[i] == b[i] {
		i++
	}
	if len(a) > len(b) {
		return a[i+1:] == b[i:]
	}
	if a[i+1:] == b[i+1:] {
		return true
	}
	return i+1 < len(a) && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:]
}
