package index

import (
	"cmp"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"

	"smartgate/internal/fhir/index/fhirpath"
	"smartgate/internal/fhir/spec"
	"smartgate/internal/store"
)

// builder collects the rows of one resource.
type builder struct {
	base string // without a trailing slash
	idx  store.Index
}

// add turns one value of search parameter p into rows by p's type.
func (b *builder) add(p param, it fhirpath.Item) {
	switch p.typ {
	case spec.Token:
		b.token(p.code, it)
	case spec.String:
		b.string(p.code, it)
	case spec.Reference:
		b.reference(p.code, it)
	case spec.Date:
		b.date(p.code, it)
	case spec.Quantity:
		b.quantity(p.code, it)
	case spec.Number:
		if v, ok := number(it.Value); ok {
			b.idx.Numbers = append(b.idx.Numbers, store.NumberIndex{Param: p.code, Value: v})
		}
	case spec.URI:
		if s, ok := it.Value.(string); ok {
			for _, u := range withoutVersion(s) {
				b.idx.URIs = append(b.idx.URIs, store.URIIndex{Param: p.code, Value: u})
			}
		}
	}
}

func (b *builder) tok(param, system, code, text string) {
	b.idx.Tokens = append(b.idx.Tokens, store.TokenIndex{Param: param, System: system, Code: code, Text: text})
}

func (b *builder) token(param string, it fhirpath.Item) {
	switch v := it.Value.(type) {
	case string:
		if v != "" {
			b.tok(param, "", v, "")
		}
	case bool:
		b.tok(param, "", strconv.FormatBool(v), "")
	case json.Number:
		b.tok(param, "", v.String(), "")
	case map[string]any:
		switch {
		case it.Type == "CodeableConcept" || it.Type == "" && (v["coding"] != nil || v["text"] != nil && v["value"] == nil && v["code"] == nil):
			for _, c := range array(v["coding"]) {
				b.coding(param, object(c))
			}
			if t := text(v["text"]); t != "" {
				b.tok(param, "", "", Normalize(t))
			}
		case it.Type == "Identifier" || it.Type == "ContactPoint" || it.Type == "" && v["value"] != nil:
			if value := text(v["value"]); value != "" {
				b.tok(param, text(v["system"]), value, Normalize(text(object(v["type"])["text"])))
			}
		case it.Type == "Coding" || it.Type == "":
			b.coding(param, v)
		}
	}
}

func (b *builder) coding(param string, c map[string]any) {
	code, display := text(c["code"]), text(c["display"])
	if code != "" || display != "" {
		b.tok(param, text(c["system"]), code, Normalize(display))
	}
}

// nameParts are the string elements of HumanName and Address, in the
// order their rows are made.
var nameParts = []string{"text", "family", "given", "prefix", "suffix", "line", "city", "district", "state", "postalCode", "country"}

func (b *builder) string(param string, it fhirpath.Item) {
	switch v := it.Value.(type) {
	case string:
		b.str(param, v)
	case map[string]any:
		for _, k := range nameParts {
			switch x := v[k].(type) {
			case string:
				b.str(param, x)
			case []any:
				for _, e := range x {
					b.str(param, text(e))
				}
			}
		}
	}
}

func (b *builder) str(param, s string) {
	if n := Normalize(s); n != "" {
		b.idx.Strings = append(b.idx.Strings, store.StringIndex{Param: param, Norm: n, Exact: s})
	}
}

func (b *builder) reference(param string, it fhirpath.Item) {
	switch v := it.Value.(type) {
	case string: // a canonical
		for _, u := range withoutVersion(v) {
			b.idx.Refs = append(b.idx.Refs, store.RefIndex{Param: param, URL: u})
		}
	case map[string]any:
		if ref := text(v["reference"]); ref != "" && ref[0] != '#' {
			if typ, id, ok := SplitReference(ref, b.base); ok {
				b.idx.Refs = append(b.idx.Refs, store.RefIndex{Param: param, Type: typ, ID: id})
			} else {
				b.idx.Refs = append(b.idx.Refs, store.RefIndex{Param: param, URL: ref})
			}
		}
		ident := object(v["identifier"])
		if value := text(ident["value"]); value != "" {
			b.idx.Refs = append(b.idx.Refs, store.RefIndex{Param: param, Type: text(v["type"]), IdentSystem: text(ident["system"]), IdentValue: value})
		}
	}
}

// withoutVersion returns s, and s without its "|version" when it has one.
func withoutVersion(s string) []string {
	if s == "" {
		return nil
	}
	if i := strings.LastIndexByte(s, '|'); i > 0 {
		return []string{s, s[:i]}
	}
	return []string{s}
}

func (b *builder) date(param string, it fhirpath.Item) {
	switch v := it.Value.(type) {
	case string:
		if lo, hi, err := DateRange(v); err == nil {
			b.idx.Dates = append(b.idx.Dates, store.DateIndex{Param: param, Low: lo, High: hi})
		}
	case map[string]any:
		switch {
		case it.Type == "Period" || it.Type == "" && (v["start"] != nil || v["end"] != nil):
			b.period(param, v)
		case it.Type == "Timing" || it.Type == "" && (v["event"] != nil || v["repeat"] != nil):
			for _, e := range array(v["event"]) {
				b.date(param, fhirpath.Item{Value: e})
			}
			if bp, ok := object(v["repeat"])["boundsPeriod"].(map[string]any); ok {
				b.period(param, bp)
			}
		}
	}
}

func (b *builder) period(param string, p map[string]any) {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	start, end := text(p["start"]), text(p["end"])
	if start == "" && end == "" {
		return
	}
	var err error
	if start != "" {
		if lo, _, err = DateRange(start); err != nil {
			return
		}
	}
	if end != "" {
		if _, hi, err = DateRange(end); err != nil {
			return
		}
	}
	b.idx.Dates = append(b.idx.Dates, store.DateIndex{Param: param, Low: lo, High: hi})
}

func (b *builder) quantity(param string, it fhirpath.Item) {
	v, ok := it.Value.(map[string]any)
	if !ok || it.Type == "SampledData" || it.Type == "" && v["origin"] != nil {
		return
	}
	if it.Type == "Range" || it.Type == "" && (v["low"] != nil || v["high"] != nil) {
		b.quantityRow(param, object(v["low"]))
		b.quantityRow(param, object(v["high"]))
		return
	}
	b.quantityRow(param, v)
}

func (b *builder) quantityRow(param string, q map[string]any) {
	value, ok := number(q["value"])
	if !ok {
		return
	}
	row := store.QuantityIndex{Param: param, Value: value, System: text(q["system"]), Code: text(q["code"]), Unit: text(q["unit"])}
	if cur := text(q["currency"]); cur != "" { // Money
		row = store.QuantityIndex{Param: param, Value: value, System: "urn:iso:std:iso:4217", Code: cur}
	}
	b.idx.Quantities = append(b.idx.Quantities, row)
}

// finish sorts every slice and drops repeated rows.
func (b *builder) finish() {
	x := &b.idx
	x.Tokens = sortRows(x.Tokens, func(a, b store.TokenIndex) int {
		return cmp.Or(cmp.Compare(a.Param, b.Param), cmp.Compare(a.System, b.System), cmp.Compare(a.Code, b.Code), cmp.Compare(a.Text, b.Text))
	})
	x.Strings = sortRows(x.Strings, func(a, b store.StringIndex) int {
		return cmp.Or(cmp.Compare(a.Param, b.Param), cmp.Compare(a.Norm, b.Norm), cmp.Compare(a.Exact, b.Exact))
	})
	x.Refs = sortRows(x.Refs, func(a, b store.RefIndex) int {
		return cmp.Or(cmp.Compare(a.Param, b.Param), cmp.Compare(a.Type, b.Type), cmp.Compare(a.ID, b.ID),
			cmp.Compare(a.URL, b.URL), cmp.Compare(a.IdentSystem, b.IdentSystem), cmp.Compare(a.IdentValue, b.IdentValue))
	})
	x.Dates = sortRows(x.Dates, func(a, b store.DateIndex) int {
		return cmp.Or(cmp.Compare(a.Param, b.Param), cmp.Compare(a.Low, b.Low), cmp.Compare(a.High, b.High))
	})
	x.Quantities = sortRows(x.Quantities, func(a, b store.QuantityIndex) int {
		return cmp.Or(cmp.Compare(a.Param, b.Param), cmp.Compare(a.Value, b.Value), cmp.Compare(a.System, b.System),
			cmp.Compare(a.Code, b.Code), cmp.Compare(a.Unit, b.Unit))
	})
	x.Numbers = sortRows(x.Numbers, func(a, b store.NumberIndex) int {
		return cmp.Or(cmp.Compare(a.Param, b.Param), cmp.Compare(a.Value, b.Value))
	})
	x.URIs = sortRows(x.URIs, func(a, b store.URIIndex) int {
		return cmp.Or(cmp.Compare(a.Param, b.Param), cmp.Compare(a.Value, b.Value))
	})
	x.Patients = sortRows(x.Patients, strings.Compare)
	x.Links = sortRows(x.Links, func(a, b store.Membership) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Patient, b.Patient))
	})
	detach(x)
}

// detach copies the strings of x's rows (all but the parameter codes,
// which come from package spec) into one new block. The decoded resource's
// strings are slices of one copy of its body (validate.Decode), so a row
// holding one would keep the whole body alive for as long as the rows
// wait to be written: about a body's size more a resource in a bulk
// load's queues. One allocation instead of one a value.
func detach(x *store.Index) {
	n := 0
	eachString(x, func(s *string) { n += len(*s) })
	var b strings.Builder
	b.Grow(n)
	eachString(x, func(s *string) { b.WriteString(*s) })
	block, off := b.String(), 0
	eachString(x, func(s *string) {
		*s = block[off : off+len(*s)]
		off += len(*s)
	})
}

// eachString calls f with every string field of x's rows but Param.
func eachString(x *store.Index, f func(*string)) {
	each := func(ss ...*string) {
		for _, s := range ss {
			f(s)
		}
	}
	for i := range x.Tokens {
		r := &x.Tokens[i]
		each(&r.System, &r.Code, &r.Text)
	}
	for i := range x.Strings {
		each(&x.Strings[i].Norm, &x.Strings[i].Exact)
	}
	for i := range x.Refs {
		r := &x.Refs[i]
		each(&r.Type, &r.ID, &r.URL, &r.IdentSystem, &r.IdentValue)
	}
	for i := range x.Quantities {
		r := &x.Quantities[i]
		each(&r.System, &r.Code, &r.Unit)
	}
	for i := range x.URIs {
		each(&x.URIs[i].Value)
	}
	for i := range x.Patients {
		each(&x.Patients[i])
	}
	for i := range x.Links {
		r := &x.Links[i]
		each(&r.Type, &r.ID, &r.Patient)
	}
}

func sortRows[T comparable](rows []T, compare func(a, b T) int) []T {
	slices.SortFunc(rows, compare)
	return slices.Compact(rows)
}

// JSON accessors that tolerate any shape: a validated resource has the
// right ones, and the fuzz test feeds the others.

func text(v any) string {
	s, _ := v.(string)
	return s
}

func object(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func array(v any) []any {
	a, _ := v.([]any)
	return a
}

func number(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	return f, err == nil && !math.IsInf(f, 0)
}
