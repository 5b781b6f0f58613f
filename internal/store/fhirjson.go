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
		metaObj["lastUpdated"], _ = json.Marshal(at.UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
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
