package sqlstore

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"smartgate/internal/store"
)

// condBuilder compiles a store.Cond into a SQL boolean expression over a
// fhir_resources alias, collecting the arguments in order. Every leaf is a
// "alias.rid IN (SELECT rid FROM <index table> WHERE res_type = ? AND
// param = ? AND ...)" so that each engine may drive the query from the
// index table (selective parameters) or from the resource table.
type condBuilder struct {
	db      *DB
	args    []any
	aliases int
	filter  bool // build terms as filters on a driver's candidates, not as drivers
	// probed is probeDriver's choice for the top-level AND, which the
	// first AND built as a driver takes (and clears): the index in its
	// flattened terms plus one (0: none), and whether that term gives at
	// most probeLimit rows.
	probed       int
	probedNarrow bool
	// narrowNext: the next driving member term is known to give few
	// rows. On PostgreSQL it is written rid = ANY(ARRAY(...)) (member).
	narrowNext bool
	// last is the parts of the last driving member term built: what
	// driven wraps with the AND's filters.
	last memberParts
}

// memberParts is a driving member term "alias.rid IN (SELECT sel FROM
// from WHERE where)" before it is joined; array: written as
// "alias.rid = ANY(ARRAY(SELECT ...))" (narrowIn).
type memberParts struct {
	sel, from, where string
	array            bool
}

// narrowIn is "alias.rid IN (sub)", or on PostgreSQL for a driver known
// to give few rows (probeDriver) "alias.rid = ANY(ARRAY(
// sub))". Given the IN, PostgreSQL pulls the subquery up into a semi-join
// and, for ORDER BY rid LIMIT n, walks fhir_date_rid in row-key order
// hoping to meet n matches soon; its estimate of a date range from the
// histogram of high, which open-ended periods stretch to the largest
// integer, is far too large, and a date with no match walked all 1.24
// million date rows of the 1M set (0.3 s). ARRAY(sub) runs once, first,
// and the rows are then looked up by key (0.7 ms).
func narrowIn(alias, sub string, array bool) string {
	if array {
		return alias + ".rid = ANY(ARRAY(" + sub + "))"
	}
	return alias + ".rid IN (" + sub + ")"
}

// col is alias.name, prefixed with SQLite's no-op unary + when the term
// being built must filter rather than drive the index search.
func (b *condBuilder) col(alias, name string) string {
	if b.filter && !b.db.postgres {
		return "+" + alias + "." + name
	}
	return alias + "." + name
}

// member is the term "the resource's rid is among those the subquery
// selects". Driving, it is alias.rid IN (SELECT ...), which SQLite answers
// by materialising the subquery once and searching the resources by key.
// As a filter it is a correlated EXISTS probing the subquery's table by
// rid, so its cost follows the driver's few candidates rather than every
// row the subquery would select (e.g. every laboratory Observation).
//
// On PostgreSQL the filter's EXISTS ends with OFFSET 0, which keeps the
// planner from pulling it up into a semi-join: it stays a subplan run for
// each candidate, as on SQLite. Pulled up, each filter was one more
// relation in the join search that PostgreSQL plans for every execution
// (plan_cache_mode=force_custom_plan): 2.0-2.7 ms of planning for a
// patient's Observations of a code from a date at 1M resources, more than
// running it (0.8-2.2 ms).
func (b *condBuilder) member(alias, selectCol, from, where string) string {
	if b.filter {
		if b.db.postgres {
			where += " OFFSET 0"
		}
		return "EXISTS (SELECT 1 FROM " + from + " WHERE " + selectCol + " = " + alias + ".rid AND " + where + ")"
	}
	array := b.narrowNext && b.db.postgres
	b.narrowNext = false
	b.last = memberParts{selectCol, from, where, array}
	return narrowIn(alias, "SELECT "+selectCol+" FROM "+from+" WHERE "+where, array)
}

// flatten merges nested Ands into one, taking an Or of one term, or of
// the same term again and again, as that term: a token's scopes for a
// type give the patient's compartment once for each scope that matched
// (Or{InCompartment}, Or{InCompartment, InCompartment}), which as an AND
// term may then drive or be seen by pickDriver.
func flatten(c store.And) store.And {
	nested := false
	for _, x := range c {
		switch x := x.(type) {
		case store.And:
			nested = true
		case store.Or:
			nested = nested || same(x)
		}
	}
	if !nested {
		return c
	}
	var out store.And
	for _, x := range c {
		for {
			o, ok := x.(store.Or)
			if !ok || !same(o) {
				break
			}
			x = o[0]
		}
		if a, ok := x.(store.And); ok {
			out = append(out, flatten(a)...)
		} else {
			out = append(out, x)
		}
	}
	return out
}

// same reports whether o has terms and they are all alike.
func same(o store.Or) bool {
	if len(o) == 0 {
		return false
	}
	for _, x := range o[1:] {
		if !reflect.DeepEqual(x, o[0]) {
			return false
		}
	}
	return true
}

// pickDriver chooses the AND term likely to match fewest resources: ids,
// then compartments and references, then codes, then the rest; -1 when
// no term can drive (only ORs and NOTs). A reference to a patient whose
// compartment the AND also requires (Observation?patient=P under P's
// patient scope) comes before the compartment: it selects about the same
// resources, by row key straight from fhir_ref_target, where the
// compartment finds each resource's row key by its type and id (at 1M
// resources, 66-97 µs against 250-335 µs for a patient's 104
// Observations).
func pickDriver(c store.And) int {
	var patients []string
	for _, x := range c {
		if x, ok := x.(store.InCompartment); ok {
			patients = append(patients, x.Patients...)
		}
	}
	best, bestRank := -1, 100
	for i, x := range c {
		r := 100
		switch x := x.(type) {
		case store.IDIn, store.KeyIn:
			r = 0
		case store.InCompartment:
			r = 2
		case store.RefMatch:
			r = 3
			if !x.Identifier && x.URL == "" && (x.Type == "" || x.Type == "Patient") && slices.Contains(patients, x.ID) {
				r = 1
			}
		case store.TokenMatch:
			r = 4
			if x.Text != "" || x.AnyCode {
				r = 10
			}
		case store.StringMatch:
			r = 5
			if x.Mode == store.StringContains {
				r = 11
			}
		case store.URIMatch:
			r = 6
		case store.Chain:
			r = 7
		case store.DateMatch, store.NumberMatch:
			r = 8
		}
		if r < bestRank {
			best, bestRank = i, r
		}
	}
	return best
}

// weakDriver reports whether pickDriver chose x for want of a better
// term, not because it narrows by itself: a token, string, URI, number or
// chain may match most of a type's resources (category=laboratory), and
// without the values' frequencies nothing says which.
func weakDriver(x store.Cond) bool {
	switch x.(type) {
	case store.TokenMatch, store.StringMatch, store.URIMatch, store.NumberMatch, store.Chain:
		return true
	}
	return false
}

// isDate reports whether x is a date term of fhir_date (not _lastUpdated,
// a column of the resource's row).
func isDate(x store.Cond) bool {
	d, ok := x.(store.DateMatch)
	return ok && d.Param != "_lastUpdated"
}

// probeable reports whether x, as a driver, is one range of one index
// table that a bounded count can measure: a date, a token by code or
// system (not :text, not :not), a string other than :contains, a URI.
// Each builds (leaf) as one driving member term.
func probeable(x store.Cond) bool {
	switch x := x.(type) {
	case store.DateMatch:
		return isDate(x)
	case store.TokenMatch:
		return x.Text == "" && !x.AnyCode
	case store.StringMatch:
		return x.Mode != store.StringContains
	case store.URIMatch:
		return true
	}
	return false
}

// probeLimit is the most candidates a term may give for probeDriver to
// call it narrow (each candidate then costs one lookup per other term,
// and PostgreSQL gets it as an array); probeDriver counts up to ten times
// as many to compare terms.
var probeLimit = 1000

// probeDriver chooses the driver of a search whose top-level AND no id,
// compartment or reference drives: a search over every patient, where
// pickDriver can only rank terms by kind (a token first, in the order of
// the parameters' names) for want of the values' frequencies. It counts
// each probeable term's candidates, at most 10×probeLimit+1 index entries
// each, and returns the index (in the flattened AND) of the term with the
// fewest (the ranking's choice when it gives no more), and whether they
// are at most probeLimit; -1 keeps pickDriver's choice. At
// 1M resources, Observation?category=laboratory&code=2339-0 drove by the
// 300,000 laboratory results and took 0.4-4.4 s, and
// code=8867-4&date=ge2025-06-01 probed the date of each of the code's
// 36,843 Observations (0.10 s; 0.9 s on PostgreSQL).
//
// On PostgreSQL a date that drives anyway is counted too: a narrow one is
// written as an array (narrowIn).
func (db *DB) probeDriver(ctx context.Context, qr querier, where store.Cond, typ string) (driver int, narrow bool, err error) {
	and, ok := where.(store.And)
	if !ok {
		if where == nil {
			return -1, false, nil
		}
		and = store.And{where} // a search of one term: searchOnce wraps it the same way
	}
	and = flatten(and)
	first := pickDriver(and)
	if first < 0 || !weakDriver(and[first]) && !(db.postgres && isDate(and[first])) || len(and) == 1 && !db.postgres {
		return -1, false, nil // a term drives by itself, or (SQLite) there is no other to choose
	}
	limit := 10 * probeLimit
	counts := make([]int, len(and))
	best := -1
	for i, x := range and {
		counts[i] = -1
		if !probeable(x) {
			continue
		}
		sub := &condBuilder{db: db}
		sub.build(x, "r", typ)
		m := sub.last
		if m.sel == "" {
			continue
		}
		q := "SELECT COUNT(*) FROM (SELECT 1 FROM " + m.from + " WHERE " + m.where + " LIMIT " + strconv.Itoa(limit+1) + ") n"
		if err := qr.QueryRowContext(ctx, db.q(q), sub.args...).Scan(&counts[i]); err != nil {
			return -1, false, err
		}
		if best < 0 || counts[i] < counts[best] {
			best = i
		}
	}
	if best < 0 || counts[best] > limit {
		return -1, false, nil // nothing is known to be narrower: keep the ranking's choice
	}
	if counts[first] >= 0 && counts[best] >= counts[first] {
		best = first // no fewer than the ranking's choice
	}
	narrow = counts[best] <= probeLimit
	if best == first && !narrow {
		return -1, false, nil
	}
	return best, narrow, nil
}

// maxKeyedPatients bounds the patients whose keys a search lists
// (patientToken): a token's compartment of more patients than that drives
// as before.
const maxKeyedPatients = 32

// patientToken finds, in an AND whose driver pickDriver chose, a token
// term that may drive as the patient's token rows (schema 15): a code or
// a list of codes (tokenCodes), under a compartment of a few patients, on
// any type but Binary (whose compartment another resource may give, which
// its token rows do not hold). It returns the term's index, its codes and
// the compartment's patients, or -1 when there is none or an id or row key
// drives. A reference that puts the resource in a patient's compartment
// (RefMatch.Compartment: Observation?patient=P under a system-level token)
// names that patient as the compartment does. A term of param "code"
// comes first, as the most selective of a resource's tokens (category or
// status match many of a patient's resources), and one code before a list
// of them.
//
// The compartment or reference term stays, as a filter: it is what the
// search asks, and it rejects a resource of another patient with the same
// key.
func patientToken(c store.And, driver int, typ string) (best int, codes []store.TokenMatch, patients []string) {
	if typ == "Binary" || driver >= 0 && isKeyTerm(c[driver]) {
		return -1, nil, nil
	}
	for _, x := range c {
		switch x := x.(type) {
		case store.InCompartment:
			if len(x.Patients) > 0 && len(x.Patients) <= maxKeyedPatients && (patients == nil || len(x.Patients) < len(patients)) {
				patients = x.Patients
			}
		case store.RefMatch:
			// A reference to a patient by a compartment parameter puts
			// the resource in that patient's compartment.
			if x.Compartment && !x.Identifier && x.URL == "" && x.ID != "" {
				patients = []string{x.ID}
			}
		}
	}
	if patients == nil {
		return -1, nil, nil
	}
	best, bestRank := -1, 0
	for i, x := range c {
		ts := tokenCodes(x)
		if ts == nil {
			continue
		}
		// A code before another parameter, one code before a list.
		r := 1
		if ts[0].Param == "code" {
			r += 2
		}
		if len(ts) == 1 {
			r++
		}
		if r > bestRank {
			best, bestRank, codes = i, r, ts
		}
	}
	return best, codes, patients
}

// tokenCodes is the codes a term asks for, when it can drive as a
// patient's token rows: a TokenMatch with a code, or an Or of them
// (code=a,b) on one parameter, all with the same system or all with any;
// nil otherwise.
func tokenCodes(c store.Cond) []store.TokenMatch {
	var ts []store.TokenMatch
	switch c := c.(type) {
	case store.TokenMatch:
		ts = []store.TokenMatch{c}
	case store.Or:
		for _, x := range c {
			t, ok := x.(store.TokenMatch)
			if !ok {
				return nil
			}
			ts = append(ts, t)
		}
	}
	for _, t := range ts {
		if t.Text != "" || t.AnyCode || t.Param != ts[0].Param || t.AnySystem != ts[0].AnySystem || !t.AnySystem && t.System != ts[0].System {
			return nil
		}
	}
	if len(ts) == 0 {
		return nil
	}
	return ts
}

func isKeyTerm(c store.Cond) bool {
	switch c.(type) {
	case store.IDIn, store.KeyIn:
		return true
	}
	return false
}

// patientTokenMember builds ts (tokenCodes) as the driving member term
// "the token rows of these codes whose resource is in one of patients'
// compartments": a range of fhir_token_code (res_type, param, code,
// patient_key, system, rid) for each code and each patient's key,
// manyPatients and noPatient (patientKeys).
func (b *condBuilder) patientTokenMember(alias, typ string, ts []store.TokenMatch, patients []string) {
	t := ts[0]
	where := "x.res_type = " + b.arg(typ) + " AND x.param = " + b.arg(t.Param)
	if len(ts) == 1 {
		where += " AND x.code = " + b.arg(t.Code)
	} else {
		where += " AND x.code IN (" + b.in(len(ts)) + ")"
		for _, t := range ts {
			b.args = append(b.args, t.Code)
		}
	}
	keys := patientKeys(patients)
	where += " AND x.patient_key IN (" + b.in(len(keys)) + ")"
	b.args = append(b.args, keys...)
	if !t.AnySystem {
		where += " AND x.system = " + b.arg(t.System)
	}
	b.member(alias, "x.rid", "fhir_token x", where)
}

// driven builds an AND whose driver, c[0], selects row keys from
// index tables (a member term; ok is false for one that does not, such as
// ids, and nothing is built): the filters that need nothing of a
// candidate but its row key (byKeyOnly) run inside the driver's subquery,
// on the keys it selects, and the resource's own row is looked up only for
// the candidates that pass them; the filters on its columns (ids,
// compartments, _lastUpdated) run on those after.
//
//	alias.rid IN (SELECT dN.rid FROM (SELECT <driver's key> AS rid FROM
//	  <driver's tables> WHERE <driver's terms>) dN WHERE <key filters>)
//	AND <row filters>
//
// Before, SQLite looked each candidate up in fhir_resources (an index
// seek on res_type, deleted, rid) and then ran the filters: for a
// patient's Observations of one code from a date, 104 seeks for 3 or 4
// matches, a third of the query's CPU at 1M resources.
func (b *condBuilder) driven(c store.And, alias, typ string) (sql string, ok bool) {
	return b.drivenBy(c, alias, typ, func() { b.build(c[0], alias, typ) })
}

// drivenBy is driven with c[0]'s driving member term built by drive.
func (b *condBuilder) drivenBy(c store.And, alias, typ string, drive func()) (sql string, ok bool) {
	saved, args := b.filter, len(b.args)
	b.last = memberParts{}
	drive()
	m := b.last
	if m.sel == "" {
		b.args = b.args[:args]
		return "", false
	}
	b.aliases++
	d := "d" + strconv.Itoa(b.aliases)
	var rowTerms []store.Cond
	var keyTerms []string
	b.filter = true
	for _, x := range c[1:] {
		if byKeyOnly(x) {
			keyTerms = append(keyTerms, b.build(x, d, typ))
		} else {
			rowTerms = append(rowTerms, x)
		}
	}
	sub := "SELECT " + m.sel + " AS rid FROM " + m.from + " WHERE " + m.where
	if len(keyTerms) > 0 {
		sub = "SELECT " + d + ".rid FROM (" + sub + ") " + d + " WHERE " + strings.Join(keyTerms, " AND ")
	}
	parts := []string{narrowIn(alias, sub, m.array)}
	for _, x := range rowTerms {
		parts = append(parts, b.build(x, alias, typ))
	}
	b.filter = saved
	return "(" + strings.Join(parts, " AND ") + ")", true
}

// compartmentKey is the row key of the resource of a compartment
// membership c: a membership by a resource's own content holds it (schema
// 13); one given by another resource (index.Links: a DocumentReference
// placing a Binary) holds 0, as that resource may not exist yet, and is
// looked up by type and id (NULL while it does not exist).
const compartmentKey = "CASE c.rid WHEN 0 THEN (SELECT cr.rid FROM fhir_resources cr WHERE cr.res_type = c.res_type AND cr.res_id = c.res_id) ELSE c.rid END"

// byKeyOnly reports whether c, as a filter, reads nothing of the
// candidate but its row key (alias.rid), so that it may run on a key
// before the resource's row is read.
func byKeyOnly(c store.Cond) bool {
	switch c := c.(type) {
	case store.And:
		return all(c, byKeyOnly)
	case store.Or:
		return all(c, byKeyOnly)
	case store.Not:
		return byKeyOnly(c.Cond)
	case store.DateMatch:
		return c.Param != "_lastUpdated"
	case store.KeyIn, store.RefersToCompartment, store.LinkedPatients, store.Missing, store.Chain,
		store.TokenMatch, store.StringMatch, store.RefMatch, store.NumberMatch, store.URIMatch:
		return true
	}
	return false // IDIn, InCompartment: the resource's res_type and res_id
}

func all[T any](s []T, f func(T) bool) bool {
	for _, x := range s {
		if !f(x) {
			return false
		}
	}
	return true
}

// filterOrder puts the driver (if any) first and the filters after it,
// cheapest and most selective first: SQLite evaluates an AND's filters in
// the order written and stops at the first that fails, and each filter is
// a probe of an index table by row key. For a patient's Observations of
// one code from a date (the compartment drives), the code's probe rejects
// most candidates before the date's and the patient reference's run; in
// the order the API builds them, the reference probe ran first and held
// for every candidate.
func filterOrder(c store.And, driver int) store.And {
	out := make(store.And, 0, len(c))
	if driver >= 0 {
		out = append(out, c[driver])
	}
	for i, x := range c {
		if i != driver {
			out = append(out, x)
		}
	}
	rest := out
	if driver >= 0 {
		rest = out[1:]
	}
	slices.SortStableFunc(rest, func(a, b store.Cond) int { return filterRank(a) - filterRank(b) })
	return out
}

// filterRank orders filters: column comparisons, then token and other
// value probes, dates and numbers, references, compartments, and last
// the terms that may read many rows (chains, ORs, NOTs, :missing).
func filterRank(c store.Cond) int {
	switch c := c.(type) {
	case store.IDIn, store.KeyIn:
		return 0
	case store.DateMatch:
		if c.Param == "_lastUpdated" {
			return 0
		}
		return 3
	case store.TokenMatch:
		if c.Text != "" {
			return 5
		}
		return 1
	case store.URIMatch, store.StringMatch:
		return 2
	case store.NumberMatch:
		return 3
	case store.RefMatch:
		return 4
	case store.InCompartment, store.RefersToCompartment, store.LinkedPatients:
		return 6
	}
	return 9
}

func (b *condBuilder) arg(v any) string {
	b.args = append(b.args, v)
	return "?"
}

func (b *condBuilder) in(n int) string { return placeholders(n) }

func (b *condBuilder) build(c store.Cond, alias, typ string) string {
	switch c := c.(type) {
	case store.And:
		c = flatten(c)
		if len(c) == 0 {
			return "1 = 1"
		}
		// SQLite turns two "rid IN (...)" terms of one AND into a nested
		// index lookup (each rid of one list times each of the other);
		// let the most selective-looking term drive and make the others
		// filters (a unary + keeps SQLite from using them as index keys).
		// PostgreSQL gets the same shape: left to plan the terms as
		// semi-joins from its statistics, it spent longer planning a
		// patient's search than running it (member).
		driver := pickDriver(c)
		if !b.filter && b.probed > 0 {
			driver, b.narrowNext = b.probed-1, b.probedNarrow
			b.probed = 0
		}
		if !b.filter && len(c) > 1 {
			if t, codes, patients := patientToken(c, driver, typ); t >= 0 {
				if sql, ok := b.drivenBy(filterOrder(c, t), alias, typ, func() { b.patientTokenMember(alias, typ, codes, patients) }); ok {
					return sql
				}
			}
		}
		c = filterOrder(c, driver)
		if driver >= 0 {
			driver = 0
		}
		if driver == 0 && !b.filter && len(c) > 1 {
			if sql, ok := b.driven(c, alias, typ); ok {
				return sql
			}
		}
		saved := b.filter
		parts := make([]string, len(c))
		for i, x := range c {
			b.filter = saved || driver >= 0 && i != driver
			parts[i] = b.build(x, alias, typ)
		}
		b.filter = saved
		return "(" + strings.Join(parts, " AND ") + ")"
	case store.Or:
		if len(c) == 0 {
			return "1 = 0"
		}
		parts := make([]string, len(c))
		for i, x := range c {
			parts[i] = b.build(x, alias, typ)
		}
		return "(" + strings.Join(parts, " OR ") + ")"
	case store.Not:
		return "NOT " + b.build(c.Cond, alias, typ)
	case store.IDIn:
		if len(c.IDs) == 0 {
			return "1 = 0"
		}
		for _, id := range c.IDs {
			b.args = append(b.args, id)
		}
		return b.col(alias, "res_id") + " IN (" + b.in(len(c.IDs)) + ")"
	case store.KeyIn:
		if len(c.Keys) == 0 {
			return "1 = 0"
		}
		for _, k := range c.Keys {
			b.args = append(b.args, k)
		}
		return b.col(alias, "rid") + " IN (" + b.in(len(c.Keys)) + ")"
	case store.InCompartment:
		if len(c.Patients) == 0 {
			return "1 = 0"
		}
		pats := b.in(len(c.Patients))
		if b.filter {
			// By the candidate's row key (fhir_compartment_patient:
			// patient_id, res_type, rid, from the index alone), or a
			// membership given by another resource (rid 0) by its id.
			for range 2 {
				b.args = append(b.args, typ)
				for _, p := range c.Patients {
					b.args = append(b.args, p)
				}
			}
			return "(EXISTS (SELECT 1 FROM fhir_compartment c WHERE c.rid = " + alias + ".rid AND c.res_type = ? AND c.patient_id IN (" + pats + "))" +
				" OR EXISTS (SELECT 1 FROM fhir_compartment c WHERE c.rid = 0 AND c.res_id = " + alias + ".res_id AND c.res_type = ? AND c.patient_id IN (" + pats + ")))"
		}
		b.args = append(b.args, typ)
		for _, p := range c.Patients {
			b.args = append(b.args, p)
		}
		return b.member(alias, compartmentKey, "fhir_compartment c", "c.res_type = ? AND c.patient_id IN ("+pats+")")
	case store.RefersToCompartment:
		if len(c.Patients) == 0 {
			return "1 = 0"
		}
		b.args = append(b.args, typ, c.Param)
		for _, p := range c.Patients {
			b.args = append(b.args, p)
		}
		return b.member(alias, "f.rid", "fhir_ref f JOIN fhir_compartment c ON c.res_type = f.target_type AND c.res_id = f.target_id",
			"f.res_type = ? AND f.param = ? AND c.patient_id IN ("+b.in(len(c.Patients))+")")
	case store.LinkedPatients:
		if len(c.Via) == 0 {
			return "1 = 0"
		}
		b.args = append(b.args, typ, c.Type, c.ID)
		var via []string
		for _, l := range c.Via {
			b.args = append(b.args, l.Type, l.Param)
			via = append(via, "(f.res_type = ? AND f.param = ?)")
		}
		return b.member(alias, compartmentKey, "fhir_compartment c",
			"c.res_type = ? AND c.patient_id IN ("+
				"SELECT l.patient_id FROM fhir_ref f JOIN fhir_resources lr ON lr.rid = f.rid AND lr.deleted = 0"+
				" JOIN fhir_compartment l ON l.res_type = lr.res_type AND l.res_id = lr.res_id"+
				" WHERE f.target_type = ? AND f.target_id = ? AND ("+strings.Join(via, " OR ")+"))")
	case store.Missing:
		table, ok := kindTable(c.Kind)
		if !ok {
			return "1 = 0"
		}
		saved := b.filter
		b.filter = true // a NOT IN list would hold every row of the param
		term := b.probe(alias, table, "x.res_type = "+b.arg(typ)+" AND x.param = "+b.arg(c.Param))
		b.filter = saved
		if c.Missing {
			return "NOT " + term
		}
		return term
	case store.TokenMatch:
		var cond string
		switch {
		case c.Text != "":
			v := escapeLike(c.Text)
			cond = "(text LIKE " + b.arg(v+"%") + " ESCAPE '\\' OR text LIKE " + b.arg("% "+v+"%") + " ESCAPE '\\')"
		case c.AnyCode:
			cond = "system = " + b.arg(c.System)
		case c.AnySystem:
			cond = "code = " + b.arg(c.Code)
		default:
			// Code and system: as a filter, one lookup of fhir_token_rid
			// (rid, param, code, system) per candidate (below).
			cond = "code = " + b.arg(c.Code) + " AND system = " + b.arg(c.System)
		}
		return b.leaf(alias, "fhir_token", typ, c.Param, cond)
	case store.StringMatch:
		var cond string
		switch c.Mode {
		case store.StringExact:
			cond = "exact = " + b.arg(c.Value)
		case store.StringContains:
			cond = "norm LIKE " + b.arg("%"+escapeLike(c.Value)+"%") + " ESCAPE '\\'"
		default:
			cond = prefixRange(b, "norm", c.Value)
		}
		return b.leaf(alias, "fhir_string", typ, c.Param, cond)
	case store.RefMatch:
		var cond string
		switch {
		case c.Identifier:
			cond = "ident_value = " + b.arg(c.IdentValue)
			if !c.AnySystem {
				cond += " AND ident_system = " + b.arg(c.IdentSystem)
			}
		case c.URL != "":
			cond = "url = " + b.arg(c.URL)
		default:
			cond = "target_id = " + b.arg(c.ID)
			if c.Type != "" {
				// As a filter, a lookup of fhir_ref_target (res_type,
				// param, target_id, target_type, rid) per candidate.
				// Without the type rid is no key of it, and the rid
				// probe reads fewer rows than every reference to the
				// target.
				cond += " AND target_type = " + b.arg(c.Type)
				return b.leafBy(alias, "fhir_ref", "fhir_ref_target", typ, c.Param, cond)
			}
		}
		return b.leaf(alias, "fhir_ref", typ, c.Param, cond)
	case store.Chain:
		b.aliases++
		t := "t" + strconv.Itoa(b.aliases)
		f := "f" + strconv.Itoa(b.aliases)
		filter := b.filter
		where := f + ".res_type = " + b.arg(typ) + " AND " + f + ".param = " + b.arg(c.Param) + " AND " +
			t + ".res_type = " + b.arg(c.TargetType) + " AND " + t + ".deleted = 0"
		if c.Where != nil {
			b.filter = false // the target's own terms drive its search
			where += " AND " + b.build(c.Where, t, c.TargetType)
			b.filter = filter
		}
		return b.member(alias, f+".rid", "fhir_ref "+f+" JOIN fhir_resources "+t+" ON "+t+".res_type = "+f+".target_type AND "+t+".res_id = "+f+".target_id", where)
	case store.DateMatch:
		if c.Param == "_lastUpdated" {
			return dateCond(b, c.Prefix, alias+".last_updated", "("+alias+".last_updated + 1)", c.Low, c.High)
		}
		return b.leaf(alias, "fhir_date", typ, c.Param, dateCond(b, c.Prefix, "low", "high", c.Low, c.High))
	case store.NumberMatch:
		cond := numberCond(b, c)
		table := "fhir_number"
		if c.Quantity {
			table = "fhir_quantity"
			switch {
			case c.System != "" && c.Code != "":
				cond += " AND system = " + b.arg(c.System) + " AND code = " + b.arg(c.Code)
			case c.Code != "":
				v := b.arg(c.Code)
				cond += " AND (code = " + v + " OR unit = " + b.arg(c.Code) + ")"
			}
		}
		return b.leaf(alias, table, typ, c.Param, cond)
	case store.URIMatch:
		var cond string
		switch {
		case c.Below:
			cond = prefixRange(b, "value", c.Value)
		case c.Above:
			v := b.arg(c.Value)
			cond = "substr(" + v + ", 1, length(value)) = value"
		default:
			cond = "value = " + b.arg(c.Value)
		}
		return b.leaf(alias, "fhir_uri", typ, c.Param, cond)
	case nil:
		return "1 = 1"
	default:
		panic(fmt.Sprintf("sqlstore: unknown condition %T", c))
	}
}

func (b *condBuilder) leaf(alias, table, typ, param, cond string) string {
	return b.leafBy(alias, table, table+"_rid", typ, param, cond)
}

// leafBy is leaf whose filter form probes the index named index: the
// table's <table>_rid (the candidate's rows, checked one by one), or an
// index whose leading columns cond fills with equalities and which ends
// with rid, so that the probe is a single lookup.
//
// By row key (<table>_rid) the term leaves out res_type: every row of a
// key belongs to the one resource the key names, of the type searched.
// So fhir_token_rid (rid, param, code, system) answers a code filter from
// the index alone. Its key starts with the integer row key, on which
// nearly every comparison of the index search ends; fhir_token_code's
// starts with res_type and param, equal for every candidate, so each
// comparison went on to the code (1.2 µs a lookup instead of 3.2 at 1M
// resources; schema 12).
func (b *condBuilder) leafBy(alias, table, index, typ, param, cond string) string {
	// The arguments of cond were appended before res_type and param: put
	// those two in front of them.
	n := strings.Count(cond, "?")
	tail := append([]any(nil), b.args[len(b.args)-n:]...)
	b.args = b.args[:len(b.args)-n]
	where := "x.param = ? AND "
	if !(index == table+"_rid" && b.probesByKey()) {
		b.args = append(b.args, typ)
		where = "x.res_type = ? AND " + where
	}
	b.args = append(b.args, param)
	b.args = append(b.args, tail...)
	return b.probeBy(alias, table, index, where+cond)
}

// probe is member for a term on one index table (x). As a filter on
// SQLite, the correlated EXISTS looks the candidate up by rid, through the
// table's <table>_rid index, named: left to choose, SQLite prefers the
// index whose leading columns the term's equalities fill (res_type, param,
// code, system), and then walks every row of that code for each
// candidate. A patient's Observations of one LOINC code from a date took
// 0.8-1.9 s at 34k resources that way, growing with the database, and
// 10 ms by rid.
func (b *condBuilder) probe(alias, table, where string) string {
	return b.probeBy(alias, table, table+"_rid", where)
}

// probesByKey says whether a filter term built now is a correlated
// lookup by row key through a named index (probeBy).
func (b *condBuilder) probesByKey() bool {
	return b.filter && !b.db.postgres && b.db.indexHints()
}

func (b *condBuilder) probeBy(alias, table, index, where string) string {
	if b.probesByKey() {
		return "EXISTS (SELECT 1 FROM " + table + " x INDEXED BY " + index + " WHERE x.rid = " + alias + ".rid AND " + where + ")"
	}
	return b.member(alias, "x.rid", table+" x", where)
}

func kindTable(kind string) (string, bool) {
	switch kind {
	case "token":
		return "fhir_token", true
	case "string":
		return "fhir_string", true
	case "reference":
		return "fhir_ref", true
	case "date":
		return "fhir_date", true
	case "quantity":
		return "fhir_quantity", true
	case "number":
		return "fhir_number", true
	case "uri":
		return "fhir_uri", true
	}
	return "", false
}

// prefixRange matches col starting with v as a range, which both engines
// answer from an index (LIKE 'v%' does not on SQLite's default collation).
func prefixRange(b *condBuilder, col, v string) string {
	if v == "" {
		return "1 = 1"
	}
	return col + " >= " + b.arg(v) + " AND " + col + " < " + b.arg(v+"\U0010FFFF")
}

// dateCond is FHIR R4 §3.1.1.5.6 (date) for the resource range [lo, hi)
// against the search range [l, h).
//
// Where a date drives, fhir_date_low serves a bound on lo and
// fhir_date_high (schema 16) one on hi. Where both are bounded from one
// side only (eq, le, ap), a unary + on hi keeps SQLite, which has no
// statistics to choose by, on the low index as before schema 16: the two
// half ranges are as long as each other at worst.
func dateCond(b *condBuilder, p store.Prefix, lo, hi string, l, h int64) string {
	switch p {
	case store.NE:
		return "(" + lo + " < " + b.arg(l) + " OR " + hi + " > " + b.arg(h) + ")"
	case store.GT:
		return hi + " > " + b.arg(h)
	case store.LT:
		return lo + " < " + b.arg(l)
	case store.GE:
		// As a driver, each side of the OR is a range of its own index:
		// fhir_date_high for the first, fhir_date_low for the second.
		// The unary + keeps SQLite from reading the second by high, every
		// range ending before h, which is nearly all of them.
		return "(" + hi + " > " + b.arg(h) + " OR (" + lo + " >= " + b.arg(l) + " AND +" + hi + " <= " + b.arg(h) + "))"
	case store.LE:
		return "(" + lo + " < " + b.arg(l) + " OR (" + lo + " >= " + b.arg(l) + " AND +" + hi + " <= " + b.arg(h) + "))"
	case store.SA:
		return lo + " >= " + b.arg(h)
	case store.EB:
		return hi + " <= " + b.arg(l)
	case store.AP:
		return "(" + lo + " < " + b.arg(h) + " AND +" + hi + " > " + b.arg(l) + ")"
	default:
		return "(" + lo + " >= " + b.arg(l) + " AND +" + hi + " <= " + b.arg(h) + ")"
	}
}

func numberCond(b *condBuilder, c store.NumberMatch) string {
	switch c.Prefix {
	case store.NE:
		return "(value < " + b.arg(c.Low) + " OR value >= " + b.arg(c.High) + ")"
	case store.GT, store.SA:
		return "value > " + b.arg(c.Value)
	case store.LT, store.EB:
		return "value < " + b.arg(c.Value)
	case store.GE:
		return "value >= " + b.arg(c.Value)
	case store.LE:
		return "value <= " + b.arg(c.Value)
	default: // EQ, AP: the caller set the range
		return "value >= " + b.arg(c.Low) + " AND value < " + b.arg(c.High)
	}
}

// sortExpr is the value one _sort key orders by.
func (b *condBuilder) sortExpr(s store.Sort, typ string) string {
	switch s.Param {
	case "_id":
		return "r.res_id"
	case "_lastUpdated":
		return "r.last_updated"
	}
	var col, table string
	agg := "MIN"
	switch s.Kind {
	case "date":
		table, col = "fhir_date", "low"
		if s.Desc {
			agg, col = "MAX", "high"
		}
	case "string":
		table, col = "fhir_string", "norm"
	case "token":
		table, col = "fhir_token", "code"
	case "number":
		table, col = "fhir_number", "value"
	case "quantity":
		table, col = "fhir_quantity", "value"
	case "uri":
		table, col = "fhir_uri", "value"
	case "reference":
		table, col = "fhir_ref", "target_id"
	default:
		return "r.rid"
	}
	if s.Desc && agg == "MIN" {
		agg = "MAX"
	}
	return "(SELECT " + agg + "(" + col + ") FROM " + table + " WHERE rid = r.rid AND res_type = " + b.arg(typ) + " AND param = " + b.arg(s.Param) + ")"
}

func escapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}
