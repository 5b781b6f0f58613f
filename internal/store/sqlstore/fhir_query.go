package sqlstore

import (
	"fmt"
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
}

func (b *condBuilder) arg(v any) string {
	b.args = append(b.args, v)
	return "?"
}

func (b *condBuilder) in(n int) string { return placeholders(n) }

func (b *condBuilder) build(c store.Cond, alias, typ string) string {
	switch c := c.(type) {
	case store.And:
		if len(c) == 0 {
			return "1 = 1"
		}
		parts := make([]string, len(c))
		for i, x := range c {
			parts[i] = b.build(x, alias, typ)
		}
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
		return alias + ".res_id IN (" + b.in(len(c.IDs)) + ")"
	case store.KeyIn:
		if len(c.Keys) == 0 {
			return "1 = 0"
		}
		for _, k := range c.Keys {
			b.args = append(b.args, k)
		}
		return alias + ".rid IN (" + b.in(len(c.Keys)) + ")"
	case store.InCompartment:
		if len(c.Patients) == 0 {
			return "1 = 0"
		}
		b.args = append(b.args, typ)
		for _, p := range c.Patients {
			b.args = append(b.args, p)
		}
		return alias + ".res_id IN (SELECT c.res_id FROM fhir_compartment c WHERE c.res_type = ? AND c.patient_id IN (" + b.in(len(c.Patients)) + "))"
	case store.RefersToCompartment:
		if len(c.Patients) == 0 {
			return "1 = 0"
		}
		b.args = append(b.args, typ, c.Param)
		for _, p := range c.Patients {
			b.args = append(b.args, p)
		}
		return alias + ".rid IN (SELECT f.rid FROM fhir_ref f JOIN fhir_compartment c ON c.res_type = f.target_type AND c.res_id = f.target_id" +
			" WHERE f.res_type = ? AND f.param = ? AND c.patient_id IN (" + b.in(len(c.Patients)) + "))"
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
		return alias + ".res_id IN (SELECT c.res_id FROM fhir_compartment c WHERE c.res_type = ? AND c.patient_id IN (" +
			"SELECT l.patient_id FROM fhir_ref f JOIN fhir_resources lr ON lr.rid = f.rid AND lr.deleted = 0" +
			" JOIN fhir_compartment l ON l.res_type = lr.res_type AND l.res_id = lr.res_id" +
			" WHERE f.target_type = ? AND f.target_id = ? AND (" + strings.Join(via, " OR ") + ")))"
	case store.Missing:
		table, ok := kindTable(c.Kind)
		if !ok {
			return "1 = 0"
		}
		not := ""
		if c.Missing {
			not = "NOT "
		}
		return alias + ".rid " + not + "IN (SELECT rid FROM " + table + " WHERE res_type = " + b.arg(typ) + " AND param = " + b.arg(c.Param) + ")"
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
				cond += " AND target_type = " + b.arg(c.Type)
			}
		}
		return b.leaf(alias, "fhir_ref", typ, c.Param, cond)
	case store.Chain:
		b.aliases++
		t := "t" + strconv.Itoa(b.aliases)
		f := "f" + strconv.Itoa(b.aliases)
		head := alias + ".rid IN (SELECT " + f + ".rid FROM fhir_ref " + f + " JOIN fhir_resources " + t +
			" ON " + t + ".res_type = " + f + ".target_type AND " + t + ".res_id = " + f + ".target_id WHERE " +
			f + ".res_type = " + b.arg(typ) + " AND " + f + ".param = " + b.arg(c.Param) + " AND " +
			t + ".res_type = " + b.arg(c.TargetType) + " AND " + t + ".deleted = 0"
		if c.Where != nil {
			head += " AND " + b.build(c.Where, t, c.TargetType)
		}
		return head + ")"
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
	// The arguments of cond were appended before res_type and param: put
	// those two in front of them.
	n := strings.Count(cond, "?")
	tail := append([]any(nil), b.args[len(b.args)-n:]...)
	b.args = append(b.args[:len(b.args)-n], typ, param)
	b.args = append(b.args, tail...)
	return alias + ".rid IN (SELECT rid FROM " + table + " WHERE res_type = ? AND param = ? AND " + cond + ")"
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
func dateCond(b *condBuilder, p store.Prefix, lo, hi string, l, h int64) string {
	switch p {
	case store.NE:
		return "(" + lo + " < " + b.arg(l) + " OR " + hi + " > " + b.arg(h) + ")"
	case store.GT:
		return hi + " > " + b.arg(h)
	case store.LT:
		return lo + " < " + b.arg(l)
	case store.GE:
		return "(" + hi + " > " + b.arg(h) + " OR (" + lo + " >= " + b.arg(l) + " AND " + hi + " <= " + b.arg(h) + "))"
	case store.LE:
		return "(" + lo + " < " + b.arg(l) + " OR (" + lo + " >= " + b.arg(l) + " AND " + hi + " <= " + b.arg(h) + "))"
	case store.SA:
		return lo + " >= " + b.arg(h)
	case store.EB:
		return hi + " <= " + b.arg(l)
	case store.AP:
		return "(" + lo + " < " + b.arg(h) + " AND " + hi + " > " + b.arg(l) + ")"
	default:
		return "(" + lo + " >= " + b.arg(l) + " AND " + hi + " <= " + b.arg(h) + ")"
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
