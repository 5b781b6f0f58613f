package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzResource checks that Resource never panics, that it returns at most
// the capped number of issues, and that a body it accepts is JSON that
// encoding/json decodes and re-encodes (numbers kept as literals, as the
// store will keep them).
func FuzzResource(f *testing.F) {
	for _, b := range validFiles(f) {
		f.Add(b)
	}
	for _, tc := range invalidCases {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rt, issues := Resource(body)
		if len(issues) > maxIssues+1 {
			t.Fatalf("Resource(%q): %d issues, want at most %d", body, len(issues), maxIssues+1)
		}
		for _, is := range issues {
			if is.Code == "" || is.Diagnostics == "" {
				t.Fatalf("Resource(%q): issue without code or diagnostics: %+v", body, is)
			}
		}
		if issues != nil {
			return
		}
		if !Known(rt) {
			t.Fatalf("Resource(%q): accepted with resourceType %q, which is not known", body, rt)
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("Resource(%q): accepted, but encoding/json says: %v", body, err)
		}
		if dec.More() {
			t.Fatalf("Resource(%q): accepted, but encoding/json sees more data after the value", body)
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("Resource(%q): accepted, but does not re-encode: %v", body, err)
		}
	})
}

// TestParserAgreesWithEncodingJSON feeds both parsers the same edge cases:
// whatever the parser takes, encoding/json must take too.
func TestParserAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{}`, `[]`, `""`, `0`, `-0`, `-0.0e+1`, `1E5`, `true`, `false`, `null`,
		`"\u00e9\ud83d\ude00\/\b\f\n\r\t\"\\"`, `"\ud800"`, `"\ud800\u0041"`, `"\udc00\ud800"`,
		`{"a":1,"a":2}`, " \t\r\n{} ",
		// Refused by both:
		`01`, `1.`, `.5`, `+1`, `1e`, `-`, `"\x"`, `"\u12"`, `"\u12G4"`, "\"\x1f\"", `{"a"}`, `{"a":}`,
		`{,}`, `[1,]`, `{"a":1,}`, `tru`, `nul`, `[`, `"`, `{"a":1}}`, "\xef\xbb\xbf{}", `'a'`, `NaN`,
	} {
		var p parser
		_, perr := p.parse([]byte(in))
		jerr := json.Unmarshal([]byte(in), new(any))
		if perr == nil && jerr != nil {
			t.Errorf("parse(%q): accepted, but encoding/json says %v", in, jerr)
		}
		if perr != nil && jerr == nil {
			t.Errorf("parse(%q): refused (%s), but encoding/json accepts it", in, perr.msg)
		}
	}
}

// TestUnescape compares decoded strings with encoding/json's.
func TestUnescape(t *testing.T) {
	for _, in := range []string{
		`a\"b`, `\\\/`, `\u0041\u00e9`, `\ud83d\ude00`, `\ud800`, `\ud800x`, `\ud800\u0041`, `\udc00`, `x\ud83d\ude00y\n`,
	} {
		var want string
		if err := json.Unmarshal([]byte(`"`+in+`"`), &want); err != nil {
			t.Fatal(err)
		}
		if got := string(unescape([]byte(in))); got != want {
			t.Errorf("unescape(%q): got %q, want %q", in, got, want)
		}
	}
}

// FuzzDecode checks Decode against encoding/json with UseNumber: the same
// values for every object both accept, and a refusal only where
// encoding/json refuses too (or the body is not an object).
func FuzzDecode(f *testing.F) {
	for _, b := range validFiles(f) {
		f.Add(b)
	}
	for _, in := range []string{`{}`, `{"a":1,"a":2}`, `{"a":"\u00e9\ud800x","b\n":[1.50,-0e3,true,false,null,{}]}`, `[1]`, `{"a":}`} {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := Decode(body)
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var want map[string]any
		jerr := dec.Decode(&want)
		if jerr == nil {
			if _, terr := dec.Token(); terr == nil {
				jerr = errors.New("data after the value")
			}
		}
		if err != nil {
			return // the parser is stricter (UTF-8, depth); TestParserAgreesWithEncodingJSON covers refusals
		}
		if jerr != nil {
			t.Fatalf("Decode(%q): accepted, but encoding/json says %v", body, jerr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode(%q) = %#v, encoding/json gives %#v", body, got, want)
		}
	})
}

// TestDecode runs the seeds of FuzzDecode and every valid test file, and
// checks the refusals that name why.
func TestDecode(t *testing.T) {
	for _, in := range []string{`[1]`, `"x"`, `{"a":}`, `{} x`, "{\"a\":\"\xff\"}"} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%q): accepted", in)
		}
	}
	got, err := Decode([]byte(`{"a":"\u00e9","a\"":[1.50,null,{"b":false}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": "é", `a"`: []any{json.Number("1.50"), nil, map[string]any{"b": false}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decode = %#v, want %#v", got, want)
	}
}
