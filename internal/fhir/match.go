package fhir

import (
	"context"
	"errors"
	"slices"
	"strings"

	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// versionVisible reports whether an earlier version of a resource
// satisfies the access condition. Index rows exist only for current
// versions, so the version's own content is indexed here, in memory, and
// the condition evaluated on it; the parts that depend on other resources
// (a Binary placed by a DocumentReference, a practitioner's linked
// patients, a Provenance's targets, a chain) are asked of the store.
// Anything it cannot evaluate counts as not matching.
func (a *API) versionVisible(ctx context.Context, rd reader, res store.Resource, cond store.Cond) (bool, error) {
	if cond == nil {
		return true, nil
	}
	if res.Deleted || res.Body == nil {
		return true, nil // a deletion carries no content
	}
	ix, err := a.extract(res.Type, res.Body)
	if err != nil {
		return false, nil
	}
	m := &memMatch{a: a, ctx: ctx, rd: rd, typ: res.Type, id: res.ID, ix: ix}
	ok := m.eval(cond)
	return ok, m.err
}

type memMatch struct {
	a       *API
	ctx     context.Context
	rd      reader
	typ, id string
	ix      store.Index
	err     error
}

func (m *memMatch) eval(c store.Cond) bool {
	switch c := c.(type) {
	case nil:
		return true
	case store.And:
		for _, x := range c {
			if !m.eval(x) {
				return false
			}
		}
		return true
	case store.Or:
		for _, x := range c {
			if m.eval(x) {
				return true
			}
		}
		return false
	case store.Not:
		return !m.eval(c.Cond)
	case store.IDIn:
		return slices.Contains(c.IDs, m.id)
	case store.InCompartment:
		for _, p := range m.ix.Patients {
			if slices.Contains(c.Patients, p) {
				return true
			}
		}
		// Memberships other resources give (a DocumentReference's Binary)
		// are not in the version's content: ask the store about them.
		return m.viaOthers(c)
	case store.LinkedPatients:
		pats, err := m.a.linkedPatients(m.ctx, c)
		if err != nil {
			m.err = err
			return false
		}
		return m.eval(store.InCompartment{Patients: pats})
	case store.RefersToCompartment:
		for _, r := range m.ix.Refs {
			if r.Param == c.Param && r.Type != "" && m.readable(r.Type, r.ID, store.InCompartment{Patients: c.Patients}) {
				return true
			}
		}
		return false
	case store.Chain:
		for _, r := range m.ix.Refs {
			if r.Param == c.Param && r.Type == c.TargetType && m.readable(r.Type, r.ID, c.Where) {
				return true
			}
		}
		return false
	case store.Missing:
		has := m.has(c.Kind, c.Param)
		return has != c.Missing
	case store.TokenMatch:
		for _, t := range m.ix.Tokens {
			if t.Param != c.Param {
				continue
			}
			switch {
			case c.Text != "":
				if strings.HasPrefix(t.Text, c.Text) || strings.Contains(t.Text, " "+c.Text) {
					return true
				}
			case c.AnyCode:
				if t.System == c.System {
					return true
				}
			case c.AnySystem:
				if t.Code == c.Code {
					return true
				}
			default:
				if t.Code == c.Code && t.System == c.System {
					return true
				}
			}
		}
		return false
	case store.StringMatch:
		for _, s := range m.ix.Strings {
			if s.Param != c.Param {
				continue
			}
			switch c.Mode {
			case store.StringExact:
				if s.Exact == c.Value {
					return true
				}
			case store.StringContains:
				if strings.Contains(s.Norm, c.Value) {
					return true
				}
			default:
				if strings.HasPrefix(s.Norm, c.Value) {
					return true
				}
			}
		}
		return false
	case store.RefMatch:
		for _, r := range m.ix.Refs {
			if r.Param != c.Param {
				continue
			}
			switch {
			case c.Identifier:
				if r.IdentValue == c.IdentValue && (c.AnySystem || r.IdentSystem == c.IdentSystem) {
					return true
				}
			case c.URL != "":
				if r.URL == c.URL {
					return true
				}
			default:
				if r.ID == c.ID && (c.Type == "" || r.Type == c.Type) {
					return true
				}
			}
		}
		return false
	case store.DateMatch:
		for _, d := range m.ix.Dates {
			if d.Param == c.Param && dateHolds(c.Prefix, d.Low, d.High, c.Low, c.High) {
				return true
			}
		}
		return false
	case store.NumberMatch:
		if c.Quantity {
			for _, q := range m.ix.Quantities {
				if q.Param == c.Param && numberHolds(c, q.Value) && (c.Code == "" || (c.System == "" || q.System == c.System) && (q.Code == c.Code || c.System == "" && q.Unit == c.Code)) {
					return true
				}
			}
			return false
		}
		for _, n := range m.ix.Numbers {
			if n.Param == c.Param && numberHolds(c, n.Value) {
				return true
			}
		}
		return false
	case store.URIMatch:
		for _, u := range m.ix.URIs {
			if u.Param != c.Param {
				continue
			}
			switch {
			case c.Below && strings.HasPrefix(u.Value, c.Value),
				c.Above && strings.HasPrefix(c.Value, u.Value),
				!c.Below && !c.Above && u.Value == c.Value:
				return true
			}
		}
		return false
	}
	return false // KeyIn and anything new: not evaluable here
}

// viaOthers asks the store whether the resource is in the compartment by
// a membership another resource gives it.
func (m *memMatch) viaOthers(c store.InCompartment) bool {
	return m.readable(m.typ, m.id, c) && len(m.ix.Patients) == 0
}

// readable reports whether the current typ/id satisfies cond in the store.
func (m *memMatch) readable(typ, id string, cond store.Cond) bool {
	_, err := m.rd.ReadResource(m.ctx, typ, id, cond)
	switch {
	case err == nil, errors.Is(err, store.ErrGone):
		return true
	case errors.Is(err, store.ErrAccessDenied), errors.Is(err, store.ErrNotFound):
		return false
	}
	m.err = problem.Internal(err)
	return false
}

func (m *memMatch) has(kind, param string) bool {
	switch kind {
	case "token":
		return slices.ContainsFunc(m.ix.Tokens, func(t store.TokenIndex) bool { return t.Param == param })
	case "string":
		return slices.ContainsFunc(m.ix.Strings, func(t store.StringIndex) bool { return t.Param == param })
	case "reference":
		return slices.ContainsFunc(m.ix.Refs, func(t store.RefIndex) bool { return t.Param == param })
	case "date":
		return slices.ContainsFunc(m.ix.Dates, func(t store.DateIndex) bool { return t.Param == param })
	case "quantity":
		return slices.ContainsFunc(m.ix.Quantities, func(t store.QuantityIndex) bool { return t.Param == param })
	case "number":
		return slices.ContainsFunc(m.ix.Numbers, func(t store.NumberIndex) bool { return t.Param == param })
	case "uri":
		return slices.ContainsFunc(m.ix.URIs, func(t store.URIIndex) bool { return t.Param == param })
	}
	return false
}

// dateHolds is the store's date comparison (sqlstore dateCond) in Go.
func dateHolds(p store.Prefix, lo, hi, l, h int64) bool {
	switch p {
	case store.NE:
		return lo < l || hi > h
	case store.GT:
		return hi > h
	case store.LT:
		return lo < l
	case store.GE:
		return hi > h || lo >= l && hi <= h
	case store.LE:
		return lo < l || lo >= l && hi <= h
	case store.SA:
		return lo >= h
	case store.EB:
		return hi <= l
	case store.AP:
		return lo < h && hi > l
	}
	return lo >= l && hi <= h
}

// numberHolds is the store's number comparison (sqlstore numberCond) in Go.
func numberHolds(c store.NumberMatch, v float64) bool {
	switch c.Prefix {
	case store.NE:
		return v < c.Low || v >= c.High
	case store.GT, store.SA:
		return v > c.Value
	case store.LT, store.EB:
		return v < c.Value
	case store.GE:
		return v >= c.Value
	case store.LE:
		return v <= c.Value
	}
	return v >= c.Low && v < c.High
}
