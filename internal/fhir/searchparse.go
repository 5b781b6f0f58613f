package fhir

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"smartgate/internal/fhir/index"
	"smartgate/internal/fhir/spec"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// Paging and result limits, and bounds on what one search may ask (a
// search beyond them is refused with 400 naming the limit: they keep a
// single request from occupying the database for minutes).
const (
	maxCriteria    = 100  // search-parameter occurrences in one search
	maxOrValues    = 100  // comma-separated values of one occurrence
	maxValues      = 1000 // values over every occurrence of one search
	maxIDs         = 1000 // values of _id
	maxValueLength = 1024 // bytes of one search value

	defaultCount = 50
	maxCount     = 1000
	maxIncluded  = 1000 // included resources per page
)

// search is one parsed search request.
type search struct {
	typ      string
	where    store.Cond // nil: every resource of typ
	sort     []store.Sort
	count    int
	after    int64 // keyset cursor: the previous page's last row key
	afterVal []any // and its sort values (with _sort)
	includes []store.Include
	summary  string // "", "count", "true", "data", "text", "false"
	elements []string
	total    string // "", "none", "estimate", "accurate"
	// self holds every parameter understood, in canonical order, for the
	// self and next links; unknown parameters are left out (DESIGN.md).
	self url.Values
}

// encodeCursor makes the opaque _cursor of a next link: the last row key
// and its sort values, typed so that 64-bit integers survive.
func encodeCursor(key int64, vals []any) string {
	parts := []string{strconv.FormatInt(key, 10)}
	for _, v := range vals {
		switch v := v.(type) {
		case nil:
			parts = append(parts, "n")
		case int64:
			parts = append(parts, "i"+strconv.FormatInt(v, 10))
		case float64:
			parts = append(parts, "f"+strconv.FormatFloat(v, 'g', -1, 64))
		case string:
			parts = append(parts, "s"+v)
		default:
			parts = append(parts, "s"+fmt.Sprint(v))
		}
	}
	b, _ := json.Marshal(parts)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(c string) (int64, []any, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, nil, err
	}
	var parts []string
	if err := json.Unmarshal(raw, &parts); err != nil || len(parts) == 0 || len(parts) > 16 {
		return 0, nil, fmt.Errorf("bad cursor")
	}
	key, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || key < 0 {
		return 0, nil, fmt.Errorf("bad cursor")
	}
	var vals []any
	for _, p := range parts[1:] {
		switch {
		case p == "n":
			vals = append(vals, nil)
		case strings.HasPrefix(p, "i"):
			n, err := strconv.ParseInt(p[1:], 10, 64)
			if err != nil {
				return 0, nil, err
			}
			vals = append(vals, n)
		case strings.HasPrefix(p, "f"):
			f, err := strconv.ParseFloat(p[1:], 64)
			if err != nil {
				return 0, nil, err
			}
			vals = append(vals, f)
		case strings.HasPrefix(p, "s"):
			vals = append(vals, p[1:])
		default:
			return 0, nil, fmt.Errorf("bad cursor")
		}
	}
	return key, vals, nil
}

// checkCursor makes sure a cursor's sort values have the types of the
// search's sort keys (a forged or stale cursor is a 400, not a database
// error): dates and _lastUpdated are integers, numbers and quantities
// floats, everything else text; a value may be missing (nil).
func (s *search) checkCursor() error {
	if s.after == 0 {
		return nil
	}
	if len(s.afterVal) != len(s.sort) {
		return searchError("_cursor", "does not belong to this search (its sort differs); follow the next link as it is")
	}
	for i, srt := range s.sort {
		v := s.afterVal[i]
		if v == nil {
			continue
		}
		ok := false
		switch {
		case srt.Param == "_lastUpdated" || srt.Kind == "date":
			_, ok = v.(int64)
		case srt.Kind == "number" || srt.Kind == "quantity":
			_, ok = v.(float64)
			if n, isInt := v.(int64); isInt {
				s.afterVal[i], ok = float64(n), true
			}
		default:
			str, isStr := v.(string)
			ok = isStr && checkValue("_cursor", str) == nil
		}
		if !ok {
			return searchError("_cursor", "does not belong to this search (its sort values differ); follow the next link as it is")
		}
	}
	return nil
}

// criteria are the search parameters the search applies (no control
// parameters, no unknown ones): what may satisfy a scope's constraint.
func (s *search) criteria() url.Values {
	out := url.Values{}
	for k, vs := range s.self {
		if !controlParams[k] {
			out[k] = vs
		}
	}
	return out
}

// control parameters: not search criteria.
var controlParams = map[string]bool{
	"_count": true, "_sort": true, "_include": true, "_revinclude": true, "_summary": true,
	"_elements": true, "_total": true, "_format": true, "_pretty": true, "_cursor": true,
}

func searchError(param, format string, args ...any) *problem.Error {
	return problem.New(problem.SearchParameterInvalid, "search parameter %q: %s", param, fmt.Sprintf(format, args...))
}

// parseSearch reads a search's parameters for resource type typ. Unknown
// parameters are ignored unless strict, malformed values are always an
// error naming the parameter.
func (a *API) parseSearch(typ string, params url.Values, strict bool) (*search, error) {
	s := &search{typ: typ, count: defaultCount, self: url.Values{}}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	slices.Sort(names)
	var and store.And
	criteria, compared := 0, 0
	for _, name := range names {
		values := params[name]
		if !controlParams[name] {
			criteria += len(values)
			if criteria > maxCriteria {
				return nil, searchError(name, "a search may use at most %d parameter occurrences; split it into several searches", maxCriteria)
			}
			// Each value is a bound SQL value or more (SQLite allows
			// 32,766 in one statement): bounded over the whole search,
			// not only per occurrence.
			for _, v := range values {
				compared += len(splitOr(v))
			}
			if compared > maxValues {
				return nil, searchError(name, "a search may compare at most %d values in all (the comma-separated values of every parameter), and this one reaches %d here; split it into several searches", maxValues, compared)
			}
		}
		for _, v := range values {
			if err := checkValue(name, v); err != nil {
				return nil, err
			}
		}
		if controlParams[name] {
			if err := s.control(typ, name, values, strict); err != nil {
				return nil, err
			}
			continue
		}
		for _, v := range values {
			c, known, err := a.criterion(typ, name, v)
			if err != nil {
				return nil, err
			}
			if !known {
				if strict {
					return nil, problem.New(problem.SearchParameterUnknown, "search parameter %q is not supported for %s (Prefer: handling=strict)", name, typ).
						WithHint("The parameters %s supports are listed in /fhir/metadata.", typ)
				}
				break
			}
			and = append(and, c)
			s.self.Add(name, v)
		}
	}
	switch len(and) {
	case 0:
	case 1:
		s.where = and[0]
	default:
		s.where = and
	}
	if err := s.checkCursor(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *search) control(typ, name string, values []string, strict bool) error {
	last := values[len(values)-1]
	switch name {
	case "_format", "_pretty":
		return nil
	case "_count":
		n, err := strconv.Atoi(last)
		if err != nil || n < 0 {
			return searchError(name, "must be a whole number from 0 to %d, got %q", maxCount, last)
		}
		if n > maxCount {
			n = maxCount
		}
		s.count = n
		s.self.Set(name, strconv.Itoa(n))
	case "_cursor":
		k, vals, err := decodeCursor(last)
		if err != nil {
			return searchError(name, "is a paging cursor from a next link; follow the link as it is")
		}
		s.after, s.afterVal = k, vals
	case "_sort":
		for _, key := range strings.Split(last, ",") {
			desc := strings.HasPrefix(key, "-")
			code := strings.TrimPrefix(key, "-")
			srt := store.Sort{Param: code, Desc: desc}
			switch code {
			case "_id", "_lastUpdated":
			default:
				p, ok := spec.Lookup(typ, code)
				if !ok || !sortable(p.Type) {
					return searchError(name, "cannot sort %s by %q: use _id, _lastUpdated or a token, string, date, number, quantity, uri or reference parameter of %s", typ, code, typ)
				}
				srt.Kind = string(p.Type)
			}
			s.sort = append(s.sort, srt)
		}
		s.self.Set(name, last)
	case "_include", "_revinclude":
		for _, v := range values {
			inc, err := parseInclude(typ, name, v)
			if err != nil {
				if strict {
					return err
				}
				continue
			}
			s.includes = append(s.includes, inc)
			s.self.Add(name, v)
		}
	case "_summary":
		switch last {
		case "count", "true", "false", "data", "text":
			s.summary = last
			s.self.Set(name, last)
		default:
			return searchError(name, "must be true, count, data, text or false, got %q", last)
		}
	case "_elements":
		for _, e := range strings.Split(last, ",") {
			if e = strings.TrimSpace(e); e != "" {
				s.elements = append(s.elements, e)
			}
		}
		s.self.Set(name, last)
	case "_total":
		switch last {
		case "none", "estimate", "accurate":
			s.total = last
			s.self.Set(name, last)
		default:
			return searchError(name, "must be none, estimate or accurate, got %q", last)
		}
	}
	return nil
}

func sortable(t spec.ParamType) bool {
	switch t {
	case "token", "string", "date", "number", "quantity", "uri", "reference":
		return true
	}
	return false
}

// parseInclude reads Source:param[:Target] (FHIR R4 §3.1.1.5.4).
func parseInclude(typ, name, v string) (store.Include, error) {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return store.Include{}, searchError(name, "must be SourceType:parameter[:TargetType], e.g. %s=%s, got %q", name, includeExample(name, typ), v)
	}
	src, param := parts[0], parts[1]
	p, ok := spec.Lookup(src, param)
	if !ok || p.Type != "reference" {
		return store.Include{}, searchError(name, "%s has no reference search parameter %q", src, param)
	}
	inc := store.Include{Rev: name == "_revinclude", SourceType: src, Param: param}
	if len(parts) == 3 {
		if !slices.Contains(p.Targets, parts[2]) {
			return store.Include{}, searchError(name, "%s:%s never points at %s (targets: %s)", src, param, parts[2], strings.Join(p.Targets, ", "))
		}
		inc.TargetType = parts[2]
	}
	if inc.Rev {
		if inc.TargetType != "" && inc.TargetType != typ || !slices.Contains(p.Targets, typ) && !slices.Contains(p.Targets, "Resource") {
			return store.Include{}, searchError(name, "%s:%s does not point at %s", src, param, typ)
		}
	} else if src != typ {
		return store.Include{}, searchError(name, "an _include on a %s search must start with %s:, got %q", typ, typ, v)
	}
	return inc, nil
}

func includeExample(name, typ string) string {
	if name == "_revinclude" {
		return "Provenance:target"
	}
	return typ + ":patient"
}

// criterion parses one occurrence of a search parameter (values separated
// by unescaped commas are ORed). known is false for parameters smartgate
// does not support for typ.
func (a *API) criterion(typ, name, value string) (store.Cond, bool, error) {
	code, mod, _ := strings.Cut(name, ":")
	var chain string
	if i := strings.IndexByte(code, '.'); i >= 0 {
		code, chain = code[:i], code[i+1:]
	} else if i := strings.IndexByte(mod, '.'); i >= 0 {
		mod, chain = mod[:i], mod[i+1:]
	}
	switch code {
	case "_id":
		if mod != "" && mod != "missing" || chain != "" {
			return nil, true, searchError(name, "_id takes no modifier")
		}
		if mod == "missing" {
			return nil, false, nil
		}
		ids := splitOr(value)
		if len(ids) > maxIDs {
			return nil, true, searchError(name, "at most %d ids per search, got %d", maxIDs, len(ids))
		}
		return store.IDIn{IDs: ids}, true, nil
	case "_lastUpdated":
		if mod != "" || chain != "" {
			return nil, true, searchError(name, "_lastUpdated takes no modifier")
		}
		return orOf(splitOr(value), func(v string) (store.Cond, error) { return dateCond(name, "_lastUpdated", v) })
	}
	p, ok := spec.Lookup(typ, code)
	if !ok || p.Expression == "" && !strings.HasPrefix(code, "_") {
		return nil, false, nil
	}
	if chain != "" {
		if p.Type != "reference" {
			return nil, true, searchError(name, "only reference parameters can be chained; %s is a %s parameter", code, p.Type)
		}
		target := mod
		if target == "" {
			if len(p.Targets) != 1 {
				return nil, true, searchError(name, "%s can point at %s; name the type, e.g. %s:%s.%s", code, strings.Join(p.Targets, ", "), code, p.Targets[0], chain)
			}
			target = p.Targets[0]
		}
		if !slices.Contains(p.Targets, target) || !spec.Supported(target) {
			return nil, true, searchError(name, "%s cannot point at %s", code, target)
		}
		if strings.ContainsAny(chain, ".") {
			return nil, true, searchError(name, "chains are supported one level deep")
		}
		inner, known, err := a.criterion(target, chain, value)
		if err != nil || !known {
			if err == nil {
				err = searchError(name, "%s has no search parameter %q", target, chain)
			}
			return nil, true, err
		}
		return store.Chain{Param: code, TargetType: target, Where: inner}, true, nil
	}
	if mod == "missing" {
		switch value {
		case "true", "false":
		default:
			return nil, true, searchError(name, ":missing takes true or false, got %q", value)
		}
		if p.Type == "composite" || p.Type == "special" {
			return nil, false, nil
		}
		return store.Missing{Kind: string(p.Type), Param: code, Missing: value == "true"}, true, nil
	}
	switch p.Type {
	case "token":
		return a.tokenCond(name, code, mod, value)
	case "string":
		var mode store.StringMode
		switch mod {
		case "":
		case "exact":
			mode = store.StringExact
		case "contains":
			mode = store.StringContains
		default:
			return nil, true, searchError(name, "string parameters take :exact, :contains or :missing, not :%s", mod)
		}
		return orOf(splitOr(value), func(v string) (store.Cond, error) {
			if mode != store.StringExact {
				v = index.Normalize(v)
			}
			if v == "" {
				return nil, searchError(name, "the value is empty")
			}
			return store.StringMatch{Param: code, Value: v, Mode: mode}, nil
		})
	case "reference":
		return a.refCond(typ, name, code, mod, value, p)
	case "date":
		if mod != "" {
			return nil, true, searchError(name, "date parameters take no modifier but :missing")
		}
		return orOf(splitOr(value), func(v string) (store.Cond, error) { return dateCond(name, code, v) })
	case "number", "quantity":
		if mod != "" {
			return nil, true, searchError(name, "%s parameters take no modifier but :missing", p.Type)
		}
		return orOf(splitOr(value), func(v string) (store.Cond, error) { return numberCond(name, code, p.Type == "quantity", v) })
	case "uri":
		below, above := false, false
		switch mod {
		case "":
		case "below":
			below = true
		case "above":
			above = true
		default:
			return nil, true, searchError(name, "uri parameters take :below, :above or :missing, not :%s", mod)
		}
		return orOf(splitOr(value), func(v string) (store.Cond, error) {
			return store.URIMatch{Param: code, Value: v, Below: below, Above: above}, nil
		})
	}
	return nil, false, nil
}

func (a *API) tokenCond(name, code, mod, value string) (store.Cond, bool, error) {
	switch mod {
	case "", "not", "text":
	case "exact", "contains":
		return nil, true, searchError(name, "token parameters take :not, :text or :missing; :%s is for string parameters", mod)
	default:
		return nil, true, searchError(name, "token parameters take :not, :text or :missing, not :%s", mod)
	}
	c, known, err := orOf(splitOr(value), func(v string) (store.Cond, error) {
		if mod == "text" {
			t := index.Normalize(unescape(v))
			if t == "" {
				return nil, searchError(name, "the value is empty")
			}
			return store.TokenMatch{Param: code, Text: t}, nil
		}
		sys, cd, hasBar := splitBar(v)
		m := store.TokenMatch{Param: code}
		switch {
		case !hasBar:
			m.AnySystem, m.Code = true, cd
		case cd == "":
			if sys == "" {
				return nil, searchError(name, "%q has neither a system nor a code; use code, system|code, |code or system|", v)
			}
			m.System, m.AnyCode = sys, true
		default:
			m.System, m.Code = sys, cd
		}
		if !hasBar && cd == "" {
			return nil, searchError(name, "the value is empty")
		}
		return m, nil
	})
	if err != nil || mod != "not" {
		return c, known, err
	}
	// :not excludes resources that have any of the codes (FHIR R4 §3.1.1.5.3).
	return store.Not{Cond: c}, true, nil
}

func (a *API) refCond(typ, name, code, mod, value string, p spec.Param) (store.Cond, bool, error) {
	if mod == "identifier" {
		return orOf(splitOr(value), func(v string) (store.Cond, error) {
			sys, val, hasBar := splitBar(v)
			if val == "" {
				return nil, searchError(name, ":identifier takes system|value or value, got %q", v)
			}
			return store.RefMatch{Param: code, Identifier: true, IdentSystem: sys, AnySystem: !hasBar, IdentValue: val}, nil
		})
	}
	if mod != "" && !slices.Contains(p.Targets, mod) {
		return nil, true, searchError(name, "%s points at %s; the modifier :%s is not one of them (or use :identifier or :missing)", code, strings.Join(p.Targets, ", "), mod)
	}
	compartment := spec.PatientCompartmentParam(typ, code)
	return orOf(splitOr(value), func(v string) (store.Cond, error) {
		v = unescape(v)
		if v == "" {
			return nil, searchError(name, "the value is empty")
		}
		if rest, ok := strings.CutPrefix(v, a.base+"/"); ok {
			v = rest
		} else if strings.Contains(v, "://") || strings.HasPrefix(v, "urn:") {
			return store.RefMatch{Param: code, URL: v}, nil
		}
		v, _, _ = strings.Cut(v, "/_history/")
		t, id, hasType := strings.Cut(v, "/")
		if !hasType {
			patient := mod == "Patient" || mod == "" && len(p.Targets) == 1 && p.Targets[0] == "Patient"
			return store.RefMatch{Param: code, Type: mod, ID: v, Compartment: compartment && patient}, nil
		}
		if mod != "" && t != mod {
			return nil, searchError(name, "the modifier :%s and the value's type %s differ", mod, t)
		}
		if !slices.Contains(p.Targets, t) && !slices.Contains(p.Targets, "Resource") || id == "" || strings.Contains(id, "/") {
			return nil, searchError(name, "%q is not a reference %s can hold (Type/id with Type one of %s)", v, code, strings.Join(p.Targets, ", "))
		}
		return store.RefMatch{Param: code, Type: t, ID: id, Compartment: compartment && t == "Patient"}, nil
	})
}

// prefixes are the comparators of number, date and quantity values.
var prefixes = []store.Prefix{store.EQ, store.NE, store.GT, store.LT, store.GE, store.LE, store.SA, store.EB, store.AP}

func cutPrefix(v string) (store.Prefix, string) {
	if len(v) > 2 {
		for _, p := range prefixes {
			if v[:2] == string(p) {
				return p, v[2:]
			}
		}
	}
	return store.EQ, v
}

func dateCond(name, code, v string) (store.Cond, error) {
	p, d := cutPrefix(v)
	low, high, err := index.DateRange(d)
	if t := strings.IndexByte(d, 'T'); err == nil && t >= 0 && !strings.ContainsAny(d[t:], "Z+-") {
		err = fmt.Errorf("a time without a timezone")
	}
	if err != nil {
		return nil, searchError(name, "%q is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a timezone), optionally after a prefix eq ne gt lt ge le sa eb ap", v)
	}
	if p == store.AP {
		// ap: within 10% of the distance between the value and now
		// (FHIR R4 §3.1.1.4.2 recommends this), at least the value's precision.
		now := time.Now().UnixMicro()
		gap := math.Abs(float64(now-low)) * 0.1
		low, high = low-int64(gap), high+int64(gap)
	}
	return store.DateMatch{Param: code, Prefix: p, Low: low, High: high}, nil
}

func numberCond(name, code string, quantity bool, v string) (store.Cond, error) {
	p, rest := cutPrefix(v)
	num := rest
	var sys, unit string
	hasUnit := false
	if quantity {
		parts := splitEscaped(rest, '|')
		switch len(parts) {
		case 1:
		case 3:
			num, sys, unit, hasUnit = parts[0], unescape(parts[1]), unescape(parts[2]), true
		default:
			return nil, searchError(name, "a quantity is [prefix]number, [prefix]number|system|code or [prefix]number||code, got %q", v)
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, searchError(name, "%q is not a number (optionally after a prefix eq ne gt lt ge le sa eb ap)", v)
	}
	// The value's precision sets the range an eq matches: 5.4 is [5.35, 5.45).
	half := 0.5
	if i := strings.IndexAny(num, ".eE"); i >= 0 && num[i] == '.' {
		digits := len(num) - i - 1
		if j := strings.IndexAny(num, "eE"); j > i {
			digits = j - i - 1
		}
		half = 0.5 * math.Pow(10, -float64(digits))
	}
	low, high := f-half, f+half
	if p == store.AP {
		d := math.Max(math.Abs(f)*0.1, half)
		low, high = f-d, f+d
	}
	m := store.NumberMatch{Param: code, Quantity: quantity, Prefix: p, Value: f, Low: low, High: high}
	if hasUnit {
		m.System, m.Code, m.AnySystem = sys, unit, sys == ""
	}
	return m, nil
}

// orOf parses each comma-separated alternative and ORs them.
func orOf(values []string, parse func(string) (store.Cond, error)) (store.Cond, bool, error) {
	if len(values) > maxOrValues {
		return nil, true, problem.New(problem.SearchParameterInvalid, "a search parameter may list at most %d comma-separated values, got %d; split the search", maxOrValues, len(values))
	}
	var or store.Or
	for _, v := range values {
		c, err := parse(v)
		if err != nil {
			return nil, true, err
		}
		or = append(or, c)
	}
	if len(or) == 1 {
		return or[0], true, nil
	}
	return or, true, nil
}

// checkValue refuses values no search can use: too long, not UTF-8, or
// holding a NUL byte (which databases refuse in text).
func checkValue(name, v string) error {
	switch {
	case len(v) > maxValueLength && name != "_cursor":
		return searchError(name, "a value may be at most %d bytes long", maxValueLength)
	case !utf8.ValidString(v):
		return searchError(name, "the value is not valid UTF-8")
	case strings.IndexByte(v, 0) >= 0:
		return searchError(name, "the value holds a NUL byte")
	}
	return nil
}

// splitOr splits on commas not escaped with a backslash (FHIR R4 §3.1.1.5.7).
func splitOr(v string) []string { return splitEscaped(v, ',') }

func splitEscaped(v string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case sep:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// splitBar splits system|code at the first unescaped bar and unescapes both.
func splitBar(v string) (system, code string, hasBar bool) {
	parts := splitEscaped(v, '|')
	if len(parts) == 1 {
		return "", unescape(v), false
	}
	return unescape(parts[0]), unescape(strings.Join(parts[1:], "|")), true
}

func unescape(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
