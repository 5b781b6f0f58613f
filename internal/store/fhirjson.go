package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// SetMeta returns body with id, meta.versionId and meta.lastUpdated set
// (the meta fields only when version > 0),
// resourceType and id first and the other members in their original order.
func SetMeta(body []byte, typ, id string, version int64, at time.Time) ([]byte, error) {
	members, meta, err := topMembers(body)
	if err != nil {
		return nil, err
	}
	metaObj := map[string]json.RawMessage{}
	if len(meta) > 0 && string(meta) != "null" {
		if err := json.Unmarshal(meta, &metaObj); err != nil {
			return nil, fmt.Errorf("meta is not a JSON object")
		}
	}
	if version > 0 {
		metaObj["versionId"], _ = json.Marshal(strconv.FormatInt(version, 10))
		metaObj["lastUpdated"], _ = json.Marshal(at.UTC().Format(lastUpdatedLayout))
	}
	var b bytes.Buffer
	b.Grow(len(body) + 96)
	b.WriteString(`{"resourceType":`)
	tj, _ := json.Marshal(typ)
	b.Write(tj)
	b.WriteString(`,"id":`)
	ij, _ := json.Marshal(id)
	b.Write(ij)
	if len(metaObj) > 0 {
		metaJSON, err := json.Marshal(metaObj)
		if err != nil {
			return nil, err
		}
		b.WriteString(`,"meta":`)
		b.Write(metaJSON)
	}
	for _, m := range members {
		b.WriteByte(',')
		b.Write(m.key) // the key as written in body: a valid JSON string
		b.WriteByte(':')
		b.Write(m.raw)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// member is one top-level member of a JSON object: its key (the JSON
// string as written, quotes included) and its raw value.
type member struct {
	key []byte
	raw []byte
}

// topMembers splits a JSON object into its top-level members, except
// resourceType and id, and returns meta's raw value apart. It checks the
// whole body with json.Valid and then walks it once, tracking strings and
// nesting depth (encoding/json's Decoder, which this replaced, decoded
// every member again and was a sixth of a bulk load's CPU).
func topMembers(body []byte) (members []member, meta []byte, err error) {
	notObject := fmt.Errorf("resource body is not a JSON object")
	if !json.Valid(body) {
		return nil, nil, notObject
	}
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, nil, notObject
	}
	i++
	for {
		i = skipSpace(body, i)
		if i < len(body) && body[i] == '}' {
			return members, meta, nil
		}
		if i < len(body) && body[i] == ',' {
			i = skipSpace(body, i+1)
		}
		// key
		ks := i
		i = skipString(body, i)
		key := body[ks:i]
		i = skipSpace(body, i)
		i++ // ':'
		i = skipSpace(body, i)
		vs := i
		i = skipValue(body, i)
		raw := body[vs:i]
		var name string
		if plainKey(key) {
			name = string(key[1 : len(key)-1])
		} else {
			if err := json.Unmarshal(key, &name); err != nil {
				return nil, nil, notObject
			}
			key, _ = json.Marshal(name) // escapes written the standard way
		}
		switch name {
		case "resourceType", "id":
		case "meta":
			meta = raw
		default:
			members = append(members, member{key, raw})
		}
	}
}

// plainKey reports a key json.Marshal writes unchanged: no escapes, no
// HTML-sensitive or non-ASCII bytes. Others are decoded and written again
// the standard way.
func plainKey(key []byte) bool {
	for _, c := range key[1 : len(key)-1] {
		if c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80 || c < 0x20 {
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
	return i
}

// skipValue returns the index after the JSON value starting at b[i] (the
// body was checked with json.Valid).
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
		return i
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
func MetaTemplate(body []byte, typ, id string, version int64) ([]byte, int, error) {
	out, err := SetMeta(body, typ, id, version, time.Time{})
	if err != nil {
		return nil, 0, err
	}
	i := bytes.Index(out, metaStampKey)
	if i < 0 || bytes.Contains(out[i+1:], metaStampKey) {
		return out, 0, nil
	}
	return out, i + len(`"lastUpdated":"`), nil
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
