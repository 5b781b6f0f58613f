package scope

import (
	"fmt"
	"net/url"
	"slices"
)

// Covers reports whether a grants everything b grants, so that a client
// registered for a may be given b (SMART App Launch 2.2 §Scopes for
// requesting FHIR resources).
//
// A non-resource scope covers only itself. A resource scope a covers a
// resource scope b when:
//
//   - both have the same context (patient/ does not cover user/ or the
//     reverse, and system/ covers only system/);
//   - a's resource type is * or equals b's;
//   - b's permissions are a subset of a's, compared by meaning, so
//     patient/Observation.read and patient/Observation.rs cover each other;
//   - a has no query constraint, or b has every name=value constraint of a
//     (b may add more). An unconstrained b is never inside a constrained a.
func (a Scope) Covers(b Scope) bool {
	if a.Kind != KindResource || b.Kind != KindResource {
		return a.Kind != 0 && a.Kind == b.Kind
	}
	if a.Context != b.Context {
		return false
	}
	if a.Resource != "*" && a.Resource != b.Resource {
		return false
	}
	if !a.Perms.Has(b.Perms) {
		return false
	}
	return satisfies(b.Query, a.Query)
}

// satisfies reports whether the parameters have every constraint: for each
// constrained name, every required value is among the parameter's values.
// Values compare as exact decoded strings.
func satisfies(params, constraints url.Values) bool {
	for name, want := range constraints {
		have := params[name]
		for _, v := range want {
			if !slices.Contains(have, v) {
				return false
			}
		}
	}
	return true
}

// Narrow decides which requested scopes are granted: those that some
// registered scope covers and that allowed accepts (DESIGN.md, Tokens and
// grants: requested ∩ registered ∩ allowed). Granted scopes keep their
// requested form and order; a scope requested twice in the same form counts
// once. The others are dropped with ReasonNotRegistered, or with
// ReasonNotAllowed and allowed's explanation. A nil allowed accepts all.
//
// Parse errors are for ParseList, before Narrow: requested holds valid
// scopes only.
func Narrow(requested, registered []Scope, allowed func(Scope) (ok bool, why string)) (granted []Scope, dropped []Dropped) {
	var seen map[string]bool // only for long lists; short ones are scanned
	if len(requested) > 16 {
		seen = make(map[string]bool, len(requested))
	}
	for i, r := range requested {
		if seen != nil {
			if seen[r.Raw] {
				continue
			}
			seen[r.Raw] = true
		} else if slices.ContainsFunc(requested[:i], func(p Scope) bool { return p.Raw == r.Raw }) {
			continue
		}
		if !slices.ContainsFunc(registered, func(g Scope) bool { return g.Covers(r) }) {
			dropped = append(dropped, Dropped{Scope: r.Raw, Reason: ReasonNotRegistered, Detail: notRegisteredDetail(r, registered)})
			continue
		}
		if allowed != nil {
			if ok, why := allowed(r); !ok {
				if why == "" {
					why = "the server's policy for this grant does not allow it"
				}
				dropped = append(dropped, Dropped{Scope: r.Raw, Reason: ReasonNotAllowed, Detail: why})
				continue
			}
		}
		granted = append(granted, r)
	}
	return granted, dropped
}

// notRegisteredDetail explains why no registered scope covers r, naming the
// nearest registered scope when there is a useful one.
func notRegisteredDetail(r Scope, registered []Scope) string {
	const fix = "an administrator can add it, or a wider scope, to the client's registration"
	if r.Kind != KindResource {
		return "the client's registration does not include it; " + fix
	}
	for _, g := range registered {
		if g.Kind != KindResource || g.Context != r.Context || (g.Resource != "*" && g.Resource != r.Resource) || !g.Perms.Has(r.Perms) {
			continue
		}
		// Same context, type and permissions: only the constraint is missing.
		want := Scope{Kind: KindResource, Context: r.Context, Resource: r.Resource, Perms: r.Perms, Query: mergeQuery(r.Query, g.Query)}
		return fmt.Sprintf("the client is registered for it only with the constraint ?%s: request %s instead, or %s", encodeQuery(g.Query), want.Canonical(), fix)
	}
	for _, g := range registered {
		if g.Kind == KindResource && g.Context != r.Context && (g.Resource == "*" || g.Resource == r.Resource) && g.Perms.Has(r.Perms) {
			return fmt.Sprintf("the client is registered for %s/ scopes, not %s/ (a %s/ scope never covers another context); %s", g.Context, r.Context, g.Context, fix)
		}
	}
	return "no scope in the client's registration covers this context, resource type and permissions; " + fix
}

// mergeQuery returns the union of two constraint sets.
func mergeQuery(a, b url.Values) url.Values {
	m := url.Values{}
	for _, q := range []url.Values{a, b} {
		for k, vs := range q {
			for _, v := range vs {
				if !slices.Contains(m[k], v) {
					m[k] = append(m[k], v)
				}
			}
		}
	}
	return m
}
