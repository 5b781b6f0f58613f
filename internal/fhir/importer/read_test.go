package importer_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"smartgate/internal/fhir/importer"
)

// item is what a test compares of an Item.
type item struct {
	Pos      int
	Resource string
	Method   string
	Err      bool
}

func readAll(t testing.TB, r importer.Reader) ([]item, error) {
	t.Helper()
	var out []item
	for {
		it, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		x := item{Pos: it.Pos, Resource: string(it.Entry.Resource), Err: it.Err != nil}
		if it.Entry.Request != nil {
			x.Method = it.Entry.Request.Method
		}
		out = append(out, x)
	}
}

func TestNDJSONReader(t *testing.T) {
	cases := []struct {
		name, in string
		max      int
		want     []item
	}{
		{"plain", "{\"a\":1}\n{\"b\":2}\n", 0, []item{{Pos: 1, Resource: `{"a":1}`}, {Pos: 2, Resource: `{"b":2}`}}},
		{"no final newline", "{\"a\":1}\n{\"b\":2}", 0, []item{{Pos: 1, Resource: `{"a":1}`}, {Pos: 2, Resource: `{"b":2}`}}},
		{"CRLF, blank lines and a BOM", "\xEF\xBB\xBF{\"a\":1}\r\n\r\n  \n{\"b\":2}\r\n", 0, []item{{Pos: 1, Resource: `{"a":1}`}, {Pos: 4, Resource: `{"b":2}`}}},
		{"empty", "", 0, nil},
		{"too long", "{\"a\":1}\n{\"long\":\"" + strings.Repeat("x", 100) + "\"}\n{\"c\":3}", 64, []item{{Pos: 1, Resource: `{"a":1}`}, {Pos: 2, Err: true}, {Pos: 3, Resource: `{"c":3}`}}},
		{"too long, last", "{\"a\":1}\n" + strings.Repeat("x", 100), 64, []item{{Pos: 1, Resource: `{"a":1}`}, {Pos: 2, Err: true}}},
		{"not JSON is the validator's business", "nope\n", 0, []item{{Pos: 1, Resource: "nope"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := readAll(t, importer.NewNDJSONReader(strings.NewReader(c.in), c.max))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(c.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestBundleReader(t *testing.T) {
	cases := []struct {
		name, in string
		header   importer.BundleHeader
		want     []item
		err      string
	}{
		{
			name:   "entries with and without request",
			in:     `{"resourceType":"Bundle","id":"b","meta":{"lastUpdated":"2024-01-01T00:00:00Z"},"type":"batch","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},{"request":{"method":"DELETE","url":"Patient/1"}}],"signature":{"data":"abc"}}`,
			header: importer.BundleHeader{ResourceType: "Bundle", Type: "batch"},
			want:   []item{{Pos: 0, Resource: `{"resourceType":"Patient"}`, Method: "POST"}, {Pos: 1, Method: "DELETE"}},
		},
		{
			name:   "a bad entry is that entry's failure",
			in:     `{"resourceType":"Bundle","type":"collection","entry":[7,{"resource":{"resourceType":"Patient"}},{"fullUrl":5},null]}`,
			header: importer.BundleHeader{ResourceType: "Bundle", Type: "collection"},
			want:   []item{{Pos: 0, Err: true}, {Pos: 1, Resource: `{"resourceType":"Patient"}`}, {Pos: 2, Err: true}, {Pos: 3}},
		},
		{
			name:   "searchset outcome entries are skipped",
			in:     `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Patient"},"search":{"mode":"match"}},{"resource":{"resourceType":"OperationOutcome"},"search":{"mode":"outcome"}}]}`,
			header: importer.BundleHeader{ResourceType: "Bundle", Type: "searchset"},
			want:   []item{{Pos: 0, Resource: `{"resourceType":"Patient"}`}},
		},
		{
			name:   "no entries",
			in:     `{"resourceType":"Bundle","type":"collection"}`,
			header: importer.BundleHeader{ResourceType: "Bundle", Type: "collection"},
		},
		{
			name:   "cut short",
			in:     `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{}},{"reso`,
			header: importer.BundleHeader{ResourceType: "Bundle", Type: "collection"},
			want:   []item{{Pos: 0, Resource: `{}`}},
			err:    "cut short",
		},
		{
			name:   "not JSON",
			in:     `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{}} {}]}`,
			header: importer.BundleHeader{ResourceType: "Bundle", Type: "collection"},
			want:   []item{{Pos: 0, Resource: `{}`}},
			err:    "not valid JSON",
		},
		{
			name:   "entry is not an array",
			in:     `{"resourceType":"Bundle","type":"collection","entry":{}}`,
			header: importer.BundleHeader{ResourceType: "Bundle", Type: "collection"},
			err:    "must be an array",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := importer.NewBundleReader(strings.NewReader(c.in))
			got, err := readAll(t, b)
			if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Errorf("error %v, want one containing %q", err, c.err)
			}
			if d := cmp.Diff(c.want, got); d != "" {
				t.Errorf("items (-want +got):\n%s", d)
			}
			if d := cmp.Diff(c.header, b.Header()); d != "" {
				t.Errorf("header (-want +got):\n%s", d)
			}
		})
	}
}

func TestBundleReaderStart(t *testing.T) {
	b := importer.NewBundleReader(strings.NewReader(`{"resourceType":"Patient","id":"x","name":[{"family":"X"}]}`))
	if _, _, err := b.Start(); !errors.Is(err, importer.ErrNotBundle) {
		t.Errorf("a Patient: Start gave %v, want ErrNotBundle", err)
	}
	late := `{"entry":[{"resource":{"resourceType":"Patient"}}],"type":"transaction","resourceType":"Bundle"}`
	b = importer.NewBundleReader(strings.NewReader(late))
	if _, complete, err := b.Start(); err != nil || complete {
		t.Errorf("type after entry: complete %v, error %v; want incomplete, no error", complete, err)
	}
	h, err := importer.ScanHeader(strings.NewReader(late))
	if err != nil || h.Type != "transaction" || h.ResourceType != "Bundle" {
		t.Errorf("ScanHeader: %+v, %v", h, err)
	}
}

var ndjsonSeeds = []string{
	"{\"resourceType\":\"Patient\",\"id\":\"a\"}\n{\"resourceType\":\"Patient\"}\n",
	"\xEF\xBB\xBF{}\r\n\r\n{\"x\":[1,2,3]}",
	"",
	"\n\n\n",
	"{\"long\":\"" + strings.Repeat("y", 80) + "\"}\n{}",
}

// FuzzNDJSONReader: whatever the input, the reader ends, numbers lines
// as they are in the input, and yields each non-blank line trimmed (or,
// when longer than the limit, a failure).
func FuzzNDJSONReader(f *testing.F) {
	for _, s := range ndjsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 64
		got, err := readAll(t, importer.NewNDJSONReader(bytes.NewReader(data), max))
		if err != nil {
			t.Fatalf("error %v reading from memory", err)
		}
		var want []item
		for i, l := range bytes.Split(data, []byte{'\n'}) {
			long := len(l) > max // as in the file, a BOM included
			if i == 0 {
				l = bytes.TrimPrefix(l, []byte{0xEF, 0xBB, 0xBF})
			}
			switch {
			case long:
				want = append(want, item{Pos: i + 1, Err: true})
			case len(bytes.TrimSpace(l)) > 0:
				want = append(want, item{Pos: i + 1, Resource: string(bytes.TrimSpace(l))})
			}
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("input %q (-want +got):\n%s", data, d)
		}
	})
}

var bundleSeeds = []string{
	`{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient","id":"1"},"request":{"method":"PUT","url":"Patient/1"}}]}`,
	`{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient"}},{"resource":null},7]}`,
	`{"entry":[{}],"type":"transaction","resourceType":"Bundle","signature":{"x":[{"y":{}}]}}`,
	`{"resourceType":"Bundle","type":"searchset","entry":[{"search":{"mode":"outcome"}},{"search":{"mode":"match"},"resource":{}}]}`,
	`{"resourceType":"Patient","id":"p"}`,
	`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{}}]} trailing`,
	`[]`,
	``,
}

// FuzzBundleReader: whatever the input, the reader ends without panic,
// entry indexes increase, every resource it yields is valid JSON, and a
// Bundle that encoding/json reads whole is read entry for entry.
func FuzzBundleReader(f *testing.F) {
	for _, s := range bundleSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b := importer.NewBundleReader(bytes.NewReader(data))
		var got []importer.Item
		var readErr error
		for {
			it, err := b.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr = err
				}
				break
			}
			if len(got) > 0 && it.Pos <= got[len(got)-1].Pos {
				t.Fatalf("entry index %d after %d", it.Pos, got[len(got)-1].Pos)
			}
			if it.Entry.Resource != nil && !json.Valid(it.Entry.Resource) {
				t.Fatalf("entry %d: resource is not valid JSON: %q", it.Pos, it.Entry.Resource)
			}
			got = append(got, it)
			if len(got) > len(data) {
				t.Fatalf("more entries (%d) than input bytes", len(got))
			}
		}
		// FHIR JSON names are case-sensitive, encoding/json's struct
		// fields are not: decode the members into a map.
		var members map[string]json.RawMessage
		var whole struct {
			ResourceType, Type string
			Entry              []json.RawMessage
		}
		if json.Unmarshal(data, &members) != nil ||
			json.Unmarshal(members["resourceType"], &whole.ResourceType) != nil || whole.ResourceType != "Bundle" ||
			members["type"] != nil && json.Unmarshal(members["type"], &whole.Type) != nil ||
			members["entry"] != nil && json.Unmarshal(members["entry"], &whole.Entry) != nil {
			return
		}
		if readErr != nil {
			t.Fatalf("encoding/json reads this Bundle whole, the reader failed: %v\n%q", readErr, data)
		}
		// Duplicate members ("type" twice) are read in order by both; the
		// last wins in encoding/json.
		if b.Header().Type != whole.Type {
			t.Errorf("type %q, encoding/json says %q", b.Header().Type, whole.Type)
		}
		n := 0
		for _, raw := range whole.Entry {
			var e struct {
				Search *struct {
					Mode any `json:"mode"`
				} `json:"search"`
			}
			_ = json.Unmarshal(raw, &e)
			if e.Search != nil && e.Search.Mode == "outcome" {
				continue
			}
			n++
		}
		if strings.Count(string(data), `"entry"`) == 1 && len(got) != n {
			t.Errorf("%d entries read, encoding/json sees %d (outcomes aside)\n%q", len(got), n, data)
		}
	})
}
