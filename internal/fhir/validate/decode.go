package validate

import (
	"encoding/json"
	"errors"
	"strconv"
)

// Decode reads a JSON object into the values encoding/json's Decoder gives
// with UseNumber: map[string]any, []any, string, json.Number, bool and nil.
// It uses the validator's parser, so it accepts exactly the bodies
// Resource reads as JSON, and it costs about a quarter of encoding/json
// (no reflection; the strings without escapes, keys included, are slices of
// one copy of the body rather than one allocation each). Search indexing
// decodes every resource written, so this is on every write's path and a
// bulk load's. A repeated member name keeps its last value, as in
// encoding/json (Resource reports it).
func Decode(body []byte) (map[string]any, error) {
	v := validators.Get().(*validator) // for its parser's buffers
	defer validators.Put(v)
	p := &v.p
	defer p.trim()
	root, err := p.parse(body)
	if err != nil {
		return nil, errors.New("the body is not valid JSON: " + err.msg + " at offset " + strconv.Itoa(err.off))
	}
	if root.kind != kindObject {
		return nil, errors.New("the body is not a JSON object")
	}
	d := decoder{data: body, text: string(body), nodes: p.nodes}
	return d.object(root), nil
}

// decoder turns parsed nodes into values; text is the body as one string,
// which the strings without escapes share.
type decoder struct {
	data  []byte
	text  string
	nodes []node
}

func (d *decoder) object(n node) map[string]any {
	m := make(map[string]any, n.count)
	for _, c := range d.nodes[n.first : n.first+n.count] {
		m[d.str(c.keyStart, c.keyEnd, c.keyEsc)] = d.value(c)
	}
	return m
}

func (d *decoder) value(n node) any {
	switch n.kind {
	case kindString:
		return d.str(n.start, n.end, n.esc)
	case kindNumber:
		return json.Number(d.text[n.start:n.end])
	case kindObject:
		return d.object(n)
	case kindArray:
		a := make([]any, n.count)
		for i, c := range d.nodes[n.first : n.first+n.count] {
			a[i] = d.value(c)
		}
		return a
	case kindTrue:
		return true
	case kindFalse:
		return false
	}
	return nil
}

func (d *decoder) str(start, end int32, esc bool) string {
	if esc {
		return string(unescape(d.data[start:end]))
	}
	return d.text[start:end]
}
