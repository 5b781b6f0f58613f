package synth

import (
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// obj is one JSON object whose members keep the order they were added in,
// so bodies come out in the element order of the FHIR definitions and
// byte for byte the same on every run. A nil or empty member value is left
// out (FHIR has no empty elements).
type obj []member

type member struct {
	k string
	v any
}

// set appends a member; a zero value (nil, "", empty list) adds nothing.
func (o *obj) set(k string, v any) { *o = append(*o, member{k, v}) }

// dec is a decimal written with a fixed number of places ("37.0", not 37).
type dec struct {
	v      float64
	places int
}

// encode writes body as resourceType, id, meta.profile (when profile is
// not empty) and then body's members.
func encode(buf []byte, typ, id, profile string, body obj) []byte {
	buf = append(buf, `{"resourceType":`...)
	buf = appendString(buf, typ)
	buf = append(buf, `,"id":`...)
	buf = appendString(buf, id)
	if profile != "" {
		buf = append(buf, `,"meta":{"profile":[`...)
		buf = appendString(buf, usCore+profile)
		buf = append(buf, "]}"...)
	}
	for _, m := range body {
		if empty(m.v) {
			continue
		}
		buf = append(buf, ',')
		buf = appendString(buf, m.k)
		buf = append(buf, ':')
		buf = appendValue(buf, m.v)
	}
	return append(buf, '}')
}

func empty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case obj:
		return len(v) == 0
	case []obj:
		return len(v) == 0
	case []string:
		return len(v) == 0
	case []any:
		return len(v) == 0
	}
	return false
}

func appendValue(buf []byte, v any) []byte {
	switch v := v.(type) {
	case string:
		return appendString(buf, v)
	case int:
		return strconv.AppendInt(buf, int64(v), 10)
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1e15 {
			return strconv.AppendInt(buf, int64(v), 10)
		}
		return strconv.AppendFloat(buf, v, 'f', -1, 64)
	case dec:
		return strconv.AppendFloat(buf, v.v, 'f', v.places, 64)
	case bool:
		return strconv.AppendBool(buf, v)
	case obj:
		buf = append(buf, '{')
		first := true
		for _, m := range v {
			if empty(m.v) {
				continue
			}
			if !first {
				buf = append(buf, ',')
			}
			first = false
			buf = appendString(buf, m.k)
			buf = append(buf, ':')
			buf = appendValue(buf, m.v)
		}
		return append(buf, '}')
	case []obj:
		buf = append(buf, '[')
		for i, o := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendValue(buf, o)
		}
		return append(buf, ']')
	case []string:
		buf = append(buf, '[')
		for i, s := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, s)
		}
		return append(buf, ']')
	case []any:
		buf = append(buf, '[')
		for i, x := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendValue(buf, x)
		}
		return append(buf, ']')
	case time.Time:
		return appendString(buf, dateTime(v))
	}
	panic(fmt.Sprintf("synth: cannot encode a %T", v))
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string. HTML characters stay as they
// are (narrative XHTML reads better; the JSON is just as valid).
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				buf = append(buf, s[start:i]...)
				buf = append(buf, `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"', '\\':
			buf = append(buf, '\\', c)
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\t':
			buf = append(buf, '\\', 't')
		case '\r':
			buf = append(buf, '\\', 'r')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		i++
		start = i
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
