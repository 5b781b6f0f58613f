package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SetMeta returns body with id, meta.versionId and meta.lastUpdated set
// (the meta fields only when version > 0),
// resourceType and id first and the other members in their original order.
func SetMeta(body []byte, typ, id string, version int64, at time.Time) ([]byte, error) {
	out, _, _, err := setMeta(body, typ, id, version, at, false)
	return out, err
}

// setMeta is SetMeta; checked says body is known to be JSON (validated
// before), so it is not checked again. It also returns where meta is in
// its result: out[metaAt:metaEnd].
func setMeta(body []byte, typ, id string, version int64, at time.Time, checked bool) (out []byte, metaAt, metaEnd int, err error) {
	notObject := fmt.Errorf("resource body is not a JSON object")
	if !checked && !json.Valid(body) {
		return nil, 0, 0, notObject
	}
	members, ok := objectMembers(body)
	if !ok {
		return nil, 0, 0, notObject
	}
	var metas []member
	for _, m := range members {
		if m.name != "meta" {
			continue
		}
		// the last one counts, as in encoding/json; null is none
		metas = nil
		if string(m.raw) != "null" {
			if metas, ok = objectMembers(m.raw); !ok {
				return nil, 0, 0, fmt.Errorf("meta is not a JSON object")
			}
		}
	}
	var b bytes.Buffer
	b.Grow(len(body) + 96)
	b.WriteString(`{"resourceType":`)
	appendJSONString(&b, typ)
	b.WriteString(`,"id":`)
	appendJSONString(&b, id)
	metaAt = b.Len()
	if version > 0 {
		var vb, tb [40]byte
		metas = append(metas,
			member{name: "versionId", key: []byte(`"versionId"`), raw: strconv.AppendQuote(vb[:0], strconv.FormatInt(version, 10))},
			member{name: "lastUpdated", key: []byte(`"lastUpdated"`), raw: strconv.AppendQuote(tb[:0], at.UTC().Format(lastUpdatedLayout))})
	}
	writeMeta(&b, metas) // nothing for no members
	metaEnd = b.Len()
	for _, m := range members {
		switch m.name {
		case "resourceType", "id", "meta":
			continue
		}
		b.WriteByte(',')
		b.Write(m.key)
		b.WriteByte(':')
		b.Write(m.raw)
	}
	b.WriteByte('}')
	return b.Bytes(), metaAt, metaEnd, nil
}

// writeMeta writes `,"meta":` and the members as json.Marshal writes a
// map[string]json.RawMessage of them (which this replaced: it was a
// third of preparing a body for a load): the last of a repeated name,
// names in sorted order, values compacted with <, > and & escaped. It
// writes nothing for no members.
func writeMeta(b *bytes.Buffer, ms []member) {
	// stable, so that among equal names the last one written stays last
	slices.SortStableFunc(ms, func(x, y member) int { return strings.Compare(x.name, y.name) })
	n := 0
	for i, m := range ms {
		if i+1 < len(ms) && ms[i+1].name == m.name {
			continue
		}
		if n == 0 {
			b.WriteString(`,"meta":{`)
		} else {
			b.WriteByte(',')
		}
		n++
		b.Write(m.key)
		b.WriteByte(':')
		if needsCompact(m.raw) {
			var c bytes.Buffer
			if json.Compact(&c, m.raw) == nil {
				json.HTMLEscape(b, c.Bytes())
				continue
			}
		}
		b.Write(m.raw)
	}
	if n > 0 {
		b.WriteByte('}')
	}
}

// needsCompact reports whether json.Marshal would write raw differently
// (whitespace to drop, <, > or & to escape, or a byte that may start
// U+2028 or U+2029).
func needsCompact(raw []byte) bool {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\r', '\n', '<', '>', '&', 0xe2:
			return true
		}
	}
	return false
}

// appendJSONString writes s as json.Marshal does.
func appendJSONString(b *bytes.Buffer, s string) {
	if plain(s) {
		b.WriteByte('"')
		b.WriteString(s)
		b.WriteByte('"')
		return
	}
	j, _ := json.Marshal(s)
	b.Write(j)
}

// member is one member of a JSON object: its name, its key (a JSON
// string, quotes included, written as json.Marshal writes the name) and
// its raw value.
type member struct {
	name string
	key  []byte
	raw  []byte
}

// objectMembers splits a JSON object into its members, in order, by
// walking it once, tracking strings and nesting depth (encoding/json's
// Decoder, which this replaced, decoded every member again and was a
// sixth of a bulk load's CPU). obj must be JSON (checked before); other
// bytes give false or members that mean nothing, and it never reads
// outside obj.
func objectMembers(obj []byte) (members []member, ok bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false
	}
	i++
	for {
		i = skipSpace(obj, i)
		if i < len(obj) && obj[i] == '}' {
			return members, true
		}
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
		ks := i
		if i >= len(obj) || obj[i] != '"' {
			return nil, false
		}
		i = skipString(obj, i)
		key := obj[ks:i]
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != ':' || len(key) < 2 {
			return nil, false
		}
		i = skipSpace(obj, i+1)
		if i >= len(obj) {
			return nil, false
		}
		vs := i
		i = skipValue(obj, i)
		var name string
		if plainKey(key) {
			name = string(key[1 : len(key)-1])
		} else {
			if err := json.Unmarshal(key, &name); err != nil {
				return nil, false
			}
			key, _ = json.Marshal(name) // escapes written the standard way
		}
		members = append(members, member{name, key, obj[vs:i]})
	}
}

// plainKey reports a key json.Marshal writes unchanged (plain: no quotes
// or escapes, no HTML-sensitive or non-ASCII bytes). Others are decoded and
// written again the standard way.
func plainKey(key []byte) bool { return plain(key[1 : len(key)-1]) }

func plain[S string | []byte](s S) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80 || c < 0x20 {
			return false
		}
	}
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the JSON string starting at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the JSON value starting at b[i] (the
// body was checked with json.Valid), at most len(b).
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// lastUpdatedLayout is how SetMeta writes meta.lastUpdated: always 27
// bytes for the years 0001 to 9999 in UTC.
const lastUpdatedLayout = "2006-01-02T15:04:05.000000Z07:00"

// metaStampKey is meta.lastUpdated as SetMeta writes it for the zero time.
var metaStampKey = []byte(`"lastUpdated":"0001-01-01T00:00:00.000000Z"`)

// MetaTemplate returns SetMeta(body, typ, id, version, t) for a time t
// not known yet, and the offset in it of meta.lastUpdated's value, which
// Stamp fills in later. A bulk load prepares bodies this way on every
// core, so that its one writer only stamps each with its commit time.
// The offset is 0 when the value cannot be told apart (a body whose meta
// holds another "lastUpdated" member); such a body needs SetMeta.
//
// body must be JSON that was checked before (validate.Resource accepted
// it): MetaTemplate does not run json.Valid again, which was a tenth of a
// load's preparing. Other bytes give an error or a body that means nothing.
func MetaTemplate(body []byte, typ, id string, version int64) ([]byte, int, error) {
	out, metaAt, metaEnd, err := setMeta(body, typ, id, version, time.Time{}, true)
	if err != nil {
		return nil, 0, err
	}
	meta := out[metaAt:metaEnd]
	i := bytes.Index(meta, metaStampKey)
	if i < 0 || bytes.Contains(meta[i+1:], metaStampKey) {
		return out, 0, nil
	}
	return out, metaAt + i + len(`"lastUpdated":"`), nil
}

// Stamp writes at as meta.lastUpdated into a body from MetaTemplate, in
// place, at the offset MetaTemplate returned. It reports false, leaving
// body alone, when off is not such an offset or at falls outside the
// years 0001 to 9999.
func Stamp(body []byte, off int, at time.Time) bool {
	const n = len("0001-01-01T00:00:00.000000Z")
	if off <= 0 || off+n+1 > len(body) || body[off-1] != '"' || body[off+n] != '"' {
		return false
	}
	var buf [40]byte
	ts := at.UTC().AppendFormat(buf[:0], lastUpdatedLayout)
	if len(ts) != n {
		return false
	}
	copy(body[off:], ts)
	return true
}
