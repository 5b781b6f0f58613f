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
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("resource body is not a JSON object")
	}
	type member struct {
		key string
		raw json.RawMessage
	}
	var members []member
	var meta json.RawMessage
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := kt.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		switch key {
		case "resourceType", "id":
		case "meta":
			meta = raw
		default:
			members = append(members, member{key, raw})
		}
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
	metaJSON, err := json.Marshal(metaObj)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(len(body) + 80)
	b.WriteString(`{"resourceType":`)
	tj, _ := json.Marshal(typ)
	b.Write(tj)
	b.WriteString(`,"id":`)
	ij, _ := json.Marshal(id)
	b.Write(ij)
	if len(metaObj) > 0 {
		b.WriteString(`,"meta":`)
		b.Write(metaJSON)
	}
	for _, m := range members {
		b.WriteByte(',')
		kj, _ := json.Marshal(m.key)
		b.Write(kj)
		b.WriteByte(':')
		b.Write(m.raw)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
