package fhirpath

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The grammar of the subset, loosest binding first (FHIRPath N1 §9
// "Operator precedence"):
//
//	expr     = equality { "and" equality }
//	equality = union [ ( "=" | "!=" ) union ]
//	union    = typed { "|" typed }
//	typed    = term { ( "is" | "as" ) typeName }
//	term     = primary { "." invocation }
//	primary  = "(" expr ")" | string | number | "true" | "false" | "$this" | invocation
//	invocation = name [ "(" [ args ] ")" ]
//	typeName = name [ "." name ]  (FHIR.Patient, System.String: the last name counts)

type tokKind int

const (
	tEOF tokKind = iota
	tName
	tString
	tNumber
	tPunct // . ( ) , | = != $this
)

type token struct {
	kind tokKind
	text string // the name, the string's value, the number or the punctuation
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tString:
		return strconv.Quote(t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

func lex(src string) ([]token, error) {
	var toks []token
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			j := i + 1
			for j < len(src) && isNameByte(src[j]) {
				j++
			}
			toks = append(toks, token{tName, src[i:j]})
			i = j
		case c == '`':
			j := strings.IndexByte(src[i+1:], '`')
			if j < 1 {
				return nil, errors.New("unterminated `name`")
			}
			toks = append(toks, token{tName, src[i+1 : i+1+j]})
			i += j + 2
		case '0' <= c && c <= '9':
			j := i + 1
			for j < len(src) && ('0' <= src[j] && src[j] <= '9' || src[j] == '.' && j+1 < len(src) && '0' <= src[j+1] && src[j+1] <= '9') {
				j++
			}
			toks = append(toks, token{tNumber, src[i:j]})
			i = j
		case c == '\'':
			s, n, err := unquote(src[i:])
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{tString, s})
			i += n
		case c == '!' && strings.HasPrefix(src[i:], "!="):
			toks = append(toks, token{tPunct, "!="})
			i += 2
		case strings.HasPrefix(src[i:], "$this"):
			toks = append(toks, token{tPunct, "$this"})
			i += len("$this")
		case strings.IndexByte(".(),|=", c) >= 0:
			toks = append(toks, token{tPunct, src[i : i+1]})
			i++
		default:
			return nil, fmt.Errorf("unsupported character %q at offset %d", c, i)
		}
	}
	return append(toks, token{kind: tEOF}), nil
}

func isNameByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// unquote reads the string literal at the start of s and returns its value
// and length.
func unquote(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			return b.String(), i + 1, nil
		case '\\':
			i++
			if i >= len(s) {
				return "", 0, errors.New("unterminated string")
			}
			switch e := s[i]; e {
			case '\'', '"', '`', '\\', '/':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'f':
				b.WriteByte('\f')
			case 'u':
				if i+4 >= len(s) {
					return "", 0, errors.New("short \\u escape")
				}
				r, err := strconv.ParseUint(s[i+1:i+5], 16, 16)
				if err != nil {
					return "", 0, fmt.Errorf("bad \\u escape %q", s[i+1:i+5])
				}
				b.WriteRune(rune(r))
				i += 4
			default:
				return "", 0, fmt.Errorf("unknown escape \\%c", e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, errors.New("unterminated string")
}

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

// accept consumes the punctuation or keyword text if it comes next.
func (p *parser) accept(text string) bool {
	if t := p.peek(); (t.kind == tPunct || t.kind == tName) && t.text == text {
		p.pos++
		return true
	}
	return false
}

func (p *parser) expect(text string) error {
	if !p.accept(text) {
		return fmt.Errorf("want %q, got %s", text, p.peek())
	}
	return nil
}

func (p *parser) expr() (node, error) {
	l, err := p.equality()
	for err == nil && p.accept("and") {
		var r node
		if r, err = p.equality(); err == nil {
			l = and{l, r}
		}
	}
	return l, err
}

func (p *parser) equality() (node, error) {
	l, err := p.union()
	if err != nil {
		return nil, err
	}
	for _, op := range []string{"=", "!="} {
		if p.accept(op) {
			r, err := p.union()
			if err != nil {
				return nil, err
			}
			return equality{l, r, op == "!="}, nil
		}
	}
	return l, nil
}

func (p *parser) union() (node, error) {
	l, err := p.typed()
	for err == nil && p.accept("|") {
		var r node
		if r, err = p.typed(); err == nil {
			l = union{l, r}
		}
	}
	return l, err
}

func (p *parser) typed() (node, error) {
	x, err := p.term()
	for err == nil {
		switch {
		case p.accept("is"):
			var t string
			if t, err = p.typeName(); err == nil {
				x = isType{x, t}
			}
		case p.accept("as"):
			var t string
			if t, err = p.typeName(); err == nil {
				x = asType{x, ofType(t)}
			}
		default:
			return x, nil
		}
	}
	return nil, err
}

func (p *parser) typeName() (string, error) {
	t := p.next()
	if t.kind != tName {
		return "", fmt.Errorf("want a type name, got %s", t)
	}
	if p.peek().kind == tPunct && p.peek().text == "." && p.toks[p.pos+1].kind == tName && (t.text == "FHIR" || t.text == "System") {
		p.next()
		t = p.next()
	}
	return t.text, nil
}

func (p *parser) term() (node, error) {
	first, err := p.primary()
	if err != nil {
		return nil, err
	}
	steps := path{first}
	for p.accept(".") {
		n, err := p.invocation(false)
		if err != nil {
			return nil, err
		}
		steps = append(steps, n)
	}
	if len(steps) == 1 {
		return first, nil
	}
	return steps, nil
}

func (p *parser) primary() (node, error) {
	t := p.peek()
	switch {
	case t.kind == tPunct && t.text == "(":
		p.next()
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		return x, p.expect(")")
	case t.kind == tPunct && t.text == "$this":
		p.next()
		return this{}, nil
	case t.kind == tString:
		p.next()
		return literal{t.text}, nil
	case t.kind == tNumber:
		p.next()
		return literal{json.Number(t.text)}, nil
	case t.kind == tName && (t.text == "true" || t.text == "false"):
		p.next()
		return literal{t.text == "true"}, nil
	case t.kind == tName:
		return p.invocation(true)
	}
	return nil, fmt.Errorf("unexpected %s", t)
}

// unsupportedNames are FHIRPath keywords outside the subset; taking them
// for element names would misread the expression.
var unsupportedNames = map[string]bool{"or": true, "xor": true, "implies": true, "in": true,
	"contains": true, "div": true, "mod": true, "is": true, "as": true, "and": true}

// invocation parses a name or a function call. At the start of a term
// (first), a name that starts with an upper-case letter is a resource type.
func (p *parser) invocation(first bool) (node, error) {
	t := p.next()
	if t.kind != tName {
		return nil, fmt.Errorf("want a name, got %s", t)
	}
	if !p.accept("(") {
		if unsupportedNames[t.text] {
			return nil, fmt.Errorf("unsupported operator %q", t.text)
		}
		if first && 'A' <= t.text[0] && t.text[0] <= 'Z' {
			return typeRoot(t.text), nil
		}
		return newMember(t.text), nil
	}
	var n node
	var err error
	switch t.text {
	case "where":
		var crit node
		if crit, err = p.expr(); err == nil {
			n = where{crit}
		}
	case "exists":
		n = exists{}
	case "resolve":
		n = resolve{}
	case "ofType", "as":
		var typ string
		if typ, err = p.typeName(); err == nil {
			n = ofType(typ)
		}
	case "is":
		var typ string
		if typ, err = p.typeName(); err == nil {
			n = isType{this{}, typ}
		}
	case "extension":
		if s := p.next(); s.kind == tString {
			n = extension(s.text)
		} else {
			err = fmt.Errorf("extension() wants a url string, got %s", s)
		}
	default:
		err = fmt.Errorf("unsupported function %s()", t.text)
	}
	if err != nil {
		return nil, err
	}
	return n, p.expect(")")
}
