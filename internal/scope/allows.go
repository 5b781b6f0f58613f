package scope

import "net/url"

// Interaction is one FHIR request as the scope check sees it.
type Interaction struct {
	ResourceType string     // the FHIR resource type the request reads or writes
	Perm         Perms      // exactly one of PermC, PermR, PermU, PermD, PermS
	Params       url.Values // search parameters of a search, or nil
}

// Decision is what the granted scopes say about one Interaction.
//
// A request is allowed when any scope allows it, and each scope brings its
// own context and its own constraint. Unconstrained, Constraints and Contexts
// summarise that OR; Matches keeps each scope's context paired with its
// constraint, which the FHIR layer needs when the contexts differ (a
// constrained user/ scope next to an unconstrained patient/ scope must not
// become unconstrained user-level access).
type Decision struct {
	Allowed bool
	// Unconstrained is true when a scope without query constraints allows
	// the interaction (or the search's own parameters already satisfy a
	// scope's constraints).
	Unconstrained bool
	// Constraints, when only query-constrained scopes allow the interaction,
	// are the constraint sets the FHIR layer must enforce: the request is
	// allowed for resources that match at least one of them. The FHIR layer
	// must apply them strictly: a constraint it cannot evaluate (an unknown
	// search parameter) matches nothing. The values are shared with the
	// granted scopes and must not be modified.
	Constraints []url.Values
	// Contexts lists the contexts (patient, user, system, in that order) of
	// the scopes that allow the interaction.
	Contexts []string
	// Matches lists each granted scope that allows the interaction, in grant
	// order.
	Matches []Match
	// Needed, when the interaction is not allowed without constraints, is
	// one v2 scope that would allow it outright, e.g. "patient/Observation.s":
	// the scope="..." of a 403 insufficient_scope (RFC 6750 §3.1).
	Needed string
}

// Match is one granted scope that allows an interaction.
type Match struct {
	Scope   string     // the granted scope as requested
	Context string     // its context: patient, user or system
	Query   url.Values // the constraint left for the FHIR layer to enforce, nil when none
}

// Allows reports what the granted scopes allow for in (SMART App Launch 2.2
// §Scopes for requesting FHIR resources): every granted resource scope whose
// type is * or in.ResourceType and whose permissions include in.Perm allows
// it, within its context and its query constraints. For a search, a
// constraint is already satisfied when in.Params carries the same parameter
// with the same value(s); that scope then counts as unconstrained.
//
// When in.Perm is not exactly one permission, Allows returns the zero
// Decision: nothing is allowed and nothing is suggested.
func Allows(granted []Scope, in Interaction) Decision {
	var d Decision
	if !in.Perm.single() {
		return d
	}
	var grantedCtx, allowCtx [3]bool // patient, user, system
	for _, s := range granted {
		if s.Kind != KindResource {
			continue
		}
		ci := contextIndex(s.Context)
		if ci < 0 {
			continue
		}
		grantedCtx[ci] = true
		if !s.Perms.Has(in.Perm) || (s.Resource != "*" && s.Resource != in.ResourceType) {
			continue
		}
		q := s.Query
		if len(q) == 0 || (in.Perm == PermS && satisfies(in.Params, q)) {
			q = nil
			d.Unconstrained = true
		} else {
			d.Constraints = append(d.Constraints, q)
		}
		d.Allowed = true
		allowCtx[ci] = true
		d.Matches = append(d.Matches, Match{Scope: s.Raw, Context: s.Context, Query: q})
	}
	if d.Unconstrained {
		d.Constraints = nil
	}
	for i, c := range contexts {
		if allowCtx[i] {
			d.Contexts = append(d.Contexts, c)
		}
	}
	if !d.Unconstrained {
		ctx := ContextPatient // the default when no resource scope was granted
		for i, c := range contexts {
			if grantedCtx[i] {
				ctx = c
				break
			}
		}
		typ := in.ResourceType
		if typ == "" {
			typ = "*"
		}
		d.Needed = ctx + "/" + typ + "." + in.Perm.String()
	}
	return d
}

// contexts is the preference order of contexts for suggestions.
var contexts = [3]string{ContextPatient, ContextUser, ContextSystem}

func contextIndex(c string) int {
	switch c {
	case ContextPatient:
		return 0
	case ContextUser:
		return 1
	case ContextSystem:
		return 2
	}
	return -1
}
