package validate

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// The parser reads the body into a flat, ordered tree of nodes that point
// back into the body. encoding/json cannot serve here: decoding into maps
// loses the member order that issues must follow, json.Decoder.Token costs
// an allocation per token, and either alone costs more than the whole
// validation budget (about 80 µs and 135 µs for a 4 KB Observation, against
// about 20 µs for json.Valid, measured on the project's 2-core machine). The
// grammar is RFC 8259's, as strict as encoding/json's or stricter (invalid
// UTF-8 is refused rather than replaced, and nesting is capped), so a body
// the parser accepts is one encoding/json also accepts; a fuzz test checks it.

// nodeKind is the JSON type of a node.
type nodeKind uint8

const (
	kindNull nodeKind = iota
	kindFalse
	kindTrue
	kindNumber
	kindString
	kindObject
	kindArray
)

// maxDepth caps nesting. Real resources stay far below it (a Bundle of
// Bundles adds four levels a step); it keeps a hostile body from driving
// the recursion deep.
const maxDepth = 256

// node is one JSON value. For a string, start and end bound its content
// between the quotes; for a number, its literal text. For an object or an
// array, its members or items are nodes[first : first+count]; an object
// member also carries its name (key, keyEsc).
type node struct {
	kind     nodeKind
	esc      bool // the string holds escapes: decode before use
	keyEsc   bool
	start    int32
	end      int32
	keyStart int32
	keyEnd   int32
	first    int32
	count    int32
}

// syntaxError is why a body is not JSON, at a byte offset.
type syntaxError struct {
	msg string
	off int
}

// parser turns a body into nodes. Members of one container are gathered on
// stack while nested containers are read, then moved to nodes in one piece,
// so every container's children are contiguous.
type parser struct {
	data  []byte
	pos   int
	nodes []node
	stack []node
	err   *syntaxError
}

// parse reads data as one JSON value. The root is the last node.
func (p *parser) parse(data []byte) (root node, err *syntaxError) {
	if len(data) > 1<<31-1 {
		return node{}, &syntaxError{"the body is larger than 2 GiB", 0}
	}
	if !utf8.Valid(data) {
		return node{}, &syntaxError{"invalid UTF-8 (RFC 8259 §8.1 requires UTF-8)", firstInvalidUTF8(data)}
	}
	p.data, p.pos, p.err = data, 0, nil
	p.nodes, p.stack = p.nodes[:0], p.stack[:0]
	root = p.value(0)
	if p.err == nil {
		p.space()
		if p.pos < len(p.data) {
			p.fail("unexpected data after the JSON value")
		}
	}
	return root, p.err
}

func (p *parser) fail(msg string) node {
	if p.err == nil {
		p.err = &syntaxError{msg, p.pos}
	}
	return node{}
}

func (p *parser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) node {
	p.space()
	if p.pos >= len(p.data) {
		return p.fail("unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return p.fail(fmt.Sprintf("nesting deeper than %d levels", maxDepth))
		}
		return p.container(depth + 1)
	case c == '"':
		start, end, esc := p.str()
		return node{kind: kindString, start: int32(start), end: int32(end), esc: esc}
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true", kindTrue)
	case c == 'f':
		return p.literal("false", kindFalse)
	case c == 'n':
		return p.literal("null", kindNull)
	default:
		return p.fail(fmt.Sprintf("unexpected character %s", quoteByte(c)))
	}
}

// container reads an object or an array.
func (p *parser) container(depth int) node {
	n := node{kind: kindArray, start: int32(p.pos)}
	closer := byte(']')
	if p.data[p.pos] == '{' {
		n.kind, closer = kindObject, '}'
	}
	p.pos++
	base := len(p.stack)
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == closer {
		p.pos++
		n.first = int32(len(p.nodes))
		return n
	}
	for p.err == nil {
		var ks, ke int
		var kesc bool
		if n.kind == kindObject {
			p.space()
			if p.pos >= len(p.data) || p.data[p.pos] != '"' {
				return p.fail("expected a member name in double quotes")
			}
			ks, ke, kesc = p.str()
			p.space()
			if p.err != nil || p.pos >= len(p.data) || p.data[p.pos] != ':' {
				return p.fail("expected ':' after a member name")
			}
			p.pos++
		}
		child := p.value(depth)
		child.keyStart, child.keyEnd, child.keyEsc = int32(ks), int32(ke), kesc
		p.stack = append(p.stack, child)
		p.space()
		if p.err != nil {
			break
		}
		if p.pos >= len(p.data) {
			return p.fail("unexpected end of input")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			continue
		case closer:
			p.pos++
			n.first, n.count = int32(len(p.nodes)), int32(len(p.stack)-base)
			p.nodes = append(p.nodes, p.stack[base:]...)
			p.stack = p.stack[:base]
			return n
		}
		return p.fail(fmt.Sprintf("expected ',' or '%c'", closer))
	}
	return node{}
}

// str reads a string starting at the opening quote and returns the bounds
// of its content and whether it holds escapes.
func (p *parser) str() (start, end int, esc bool) {
	p.pos++
	start = p.pos
	for p.pos < len(p.data) {
		switch c := p.data[p.pos]; {
		case c == '"':
			end = p.pos
			p.pos++
			return start, end, esc
		case c == '\\':
			esc = true
			p.pos++
			if p.pos >= len(p.data) {
				break
			}
			switch p.data[p.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.pos++
			case 'u':
				if p.pos+4 >= len(p.data) || !isHex4(p.data[p.pos+1:p.pos+5]) {
					p.fail(`invalid \u escape in a string`)
					return 0, 0, false
				}
				p.pos += 5
			default:
				p.fail("invalid escape in a string")
				return 0, 0, false
			}
		case c < 0x20:
			p.fail("control character in a string (escape it)")
			return 0, 0, false
		default:
			p.pos++
		}
	}
	p.fail("unterminated string")
	return 0, 0, false
}

func (p *parser) number() node {
	start := p.pos
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.data[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(p.data) && p.data[p.pos] == '0':
		p.pos++
	case digits() == 0:
		return p.fail("invalid number")
	}
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return p.fail("invalid number: digits must follow '.'")
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return p.fail("invalid number: digits must follow the exponent")
		}
	}
	return node{kind: kindNumber, start: int32(start), end: int32(p.pos)}
}

func (p *parser) literal(word string, k nodeKind) node {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return p.fail(fmt.Sprintf("unexpected character %s", quoteByte(p.data[p.pos])))
	}
	p.pos += len(word)
	return node{kind: k}
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func quoteByte(c byte) string {
	if c < 0x20 || c >= 0x7f {
		return fmt.Sprintf("0x%02x", c)
	}
	return fmt.Sprintf("'%c'", c)
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// unescape decodes the content of a string that holds escapes. The parser
// has checked every escape; lone surrogates become U+FFFD, as in
// encoding/json.
func unescape(s []byte) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		i++
		switch s[i] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(s[i+1:])
			i += 4
			if utf16.IsSurrogate(r) {
				// A pair is two escapes in a row; the parser checked the
				// second one's digits when it read it.
				r2 := rune(-1)
				if i+2 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					r2 = hex4(s[i+3:])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default: // '"', '\\', '/'
			out = append(out, s[i])
		}
		i++
	}
	return out
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}
