package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"smartgate/internal/fhir/devdata"
)

// setMetaOld is SetMeta as it was before its single-pass rewrite, the
// oracle of the tests below.
func setMetaOld(body []byte, typ, id string, version int64, at time.Time) ([]byte, error) {
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

var metaTime = time.Date(2026, 11, 27, 1, 2, 3, 456789000, time.UTC)

func sameAsOld(t *testing.T, body []byte, version int64) {
	t.Helper()
	want, err1 := setMetaOld(body, "Observation", "o1", version, metaTime)
	got, err2 := SetMeta(body, "Observation", "o1", version, metaTime)
	if err1 == nil && err2 != nil && !json.Valid(body) {
		return // stricter than the old one: trailing data after the object
	}
	if (err1 == nil) != (err2 == nil) {
		t.Fatalf("SetMeta(%q): error %v, the old one %v", body, err2, err1)
	}
	if err1 == nil && !bytes.Equal(got, want) {
		t.Fatalf("SetMeta(%q)\n got %s\nwant %s", body, got, want)
	}
	if err2 == nil && !json.Valid(got) {
		t.Fatalf("SetMeta(%q) wrote invalid JSON %s", body, got)
	}
}

func TestSetMetaMatchesTheDecoderVersion(t *testing.T) {
	for _, r := range devdata.Set() {
		sameAsOld(t, r.Body, 3)
		sameAsOld(t, r.Body, 0)
	}
	for _, body := range []string{
		`{}`, ` { "resourceType" : "Patient" , "id":"x", "meta":{"source":"a"}, "a" : [1, {"b":"}]\"{"}], "c":-1.5e3 , "d":null,"e":true} `,
		`{"\u0061":1,"meta":null}`, `{"a":"\\"}`, `[]`, `{"a":}`, `{"a":1,}`, `"x"`, ``, `{"meta":[1]}`, `{"a":1}x`,
	} {
		sameAsOld(t, []byte(body), 1)
	}
}

func FuzzSetMeta(f *testing.F) {
	for _, r := range devdata.Set()[:20] {
		f.Add(r.Body)
	}
	f.Add([]byte(`{"a":"\\","b":{"c":[1,"]"]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		sameAsOld(t, body, 2)
		templateSameAsSetMeta(t, body)
	})
}

// templateSameAsSetMeta: MetaTemplate then Stamp makes what SetMeta makes.
// MetaTemplate trusts its caller that body is JSON; given other bytes it
// must still return, without reading outside body.
func templateSameAsSetMeta(t *testing.T, body []byte) {
	t.Helper()
	if !json.Valid(body) {
		MetaTemplate(body, "Observation", "o1", 1)
		return
	}
	want, err1 := SetMeta(body, "Observation", "o1", 1, metaTime)
	tmpl, at, err2 := MetaTemplate(body, "Observation", "o1", 1)
	if (err1 == nil) != (err2 == nil) {
		t.Fatalf("MetaTemplate(%q): error %v, SetMeta's %v", body, err2, err1)
	}
	if err1 != nil || at == 0 {
		return
	}
	if !Stamp(tmpl, at, metaTime) {
		t.Fatalf("Stamp refused MetaTemplate's offset %d in %s", at, tmpl)
	}
	if !bytes.Equal(tmpl, want) {
		t.Fatalf("MetaTemplate+Stamp(%q)\n got %s\nwant %s", body, tmpl, want)
	}
}

func TestMetaTemplate(t *testing.T) {
	for _, r := range devdata.Set() {
		templateSameAsSetMeta(t, r.Body)
	}
	// meta holding another member named lastUpdated with the zero time
	// (not valid FHIR, but JSON): no offset, so the store runs SetMeta.
	odd := []byte(`{"meta":{"extension":[{"lastUpdated":"0001-01-01T00:00:00.000000Z"}]}}`)
	if _, at, err := MetaTemplate(odd, "Patient", "p", 1); err != nil || at != 0 {
		t.Errorf("MetaTemplate of a meta with a second lastUpdated: offset %d, %v; want 0", at, err)
	}
	// Stamp checks its offset and the width of the time.
	tmpl, at, _ := MetaTemplate([]byte(`{"a":1}`), "Patient", "p", 1)
	for _, bad := range []int{0, -1, 1, at + 1, len(tmpl)} {
		if Stamp(slices.Clone(tmpl), bad, metaTime) {
			t.Errorf("Stamp at %d accepted", bad)
		}
	}
	if Stamp(slices.Clone(tmpl), at, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Error("Stamp accepted the year 10000")
	}
}

func BenchmarkSetMeta(b *testing.B) {
	var bodies [][]byte
	for _, r := range devdata.Set() {
		bodies = append(bodies, r.Body)
	}
	for _, impl := range []struct {
		name string
		fn   func([]byte, string, string, int64, time.Time) ([]byte, error)
	}{{"single-pass", SetMeta}, {"decoder", setMetaOld}, {"template", func(body []byte, typ, id string, v int64, _ time.Time) ([]byte, error) {
		out, _, err := MetaTemplate(body, typ, id, v) // body known to be JSON: no json.Valid
		return out, err
	}}} {
		b.Run(impl.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				if _, err := impl.fn(bodies[n%len(bodies)], "Observation", strconv.Itoa(n), 1, metaTime); err != nil {
					b.Fatal(err)
				}
				n++
			}
		})
	}
}

// TestSetMetaQuotesTypeAndID: a type or id json.Marshal would escape is
// written as json.Marshal writes it (the store validates ids before, but
// SetMeta must not write broken JSON whatever it is given).
func TestSetMetaQuotesTypeAndID(t *testing.T) {
	for _, id := range []string{`a"b`, `a\b`, "é", "<x>"} {
		got, err := SetMeta([]byte(`{"meta":{"tag":[{"code":"<&>"}], "source" : "x"}}`), "Patient", id, 2, metaTime)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			ID   string
			Meta map[string]any
		}
		if err := json.Unmarshal(got, &v); err != nil || v.ID != id || v.Meta["versionId"] != "2" || v.Meta["source"] != "x" {
			t.Errorf("SetMeta with id %q: %s (%v)", id, got, err)
		}
		want, _ := setMetaOld([]byte(`{"meta":{"tag":[{"code":"<&>"}], "source" : "x"}}`), "Patient", id, 2, metaTime)
		if !bytes.Equal(got, want) {
			t.Errorf("SetMeta with id %q:\n got %s\nwant %s", id, got, want)
		}
	}
}
