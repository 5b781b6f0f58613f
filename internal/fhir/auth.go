package fhir

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"smartgate/internal/fhir/index"
	"smartgate/internal/fhir/spec"
	"smartgate/internal/problem"
	"smartgate/internal/scope"
	"smartgate/internal/store"
	"smartgate/internal/token"
)

// caller is who makes a FHIR request: the verified token and its scopes.
type caller struct {
	claims *token.Claims
	scopes []scope.Scope
}

// authenticate verifies the bearer token (DESIGN.md status table: no token
// is a bare challenge, a bad one says why).
func (a *API) authenticate(r *http.Request) (*caller, error) {
	h := r.Header.Get("Authorization")
	realm := `Bearer realm="` + a.base + `"`
	if h == "" {
		return nil, problem.New(problem.TokenMissing, "this FHIR request has no access token; send Authorization: Bearer <access token>").
			WithHeader("WWW-Authenticate", realm)
	}
	raw, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		if len(h) >= 7 && strings.EqualFold(h[:7], "bearer ") {
			raw = h[7:]
		} else {
			return nil, problem.New(problem.InvalidToken, "the Authorization header must use the Bearer scheme (RFC 6750 section 2.1): Authorization: Bearer <access token>").
				WithHeader("WWW-Authenticate", realm+`, error="invalid_request", error_description="the Authorization header must use the Bearer scheme"`).
				WithStatus(http.StatusUnauthorized)
		}
	}
	raw = strings.TrimSpace(raw)
	c, err := a.tokens.Verify(r.Context(), raw)
	if err != nil {
		var te *token.Error
		desc := "the access token could not be verified"
		if errors.As(err, &te) {
			desc = "the access token is " + string(te.Reason) + ": " + te.Description
		} else {
			return nil, problem.Internal(err)
		}
		return nil, problem.New(problem.InvalidToken, "%s", desc).
			WithHeader("WWW-Authenticate", realm+`, error="invalid_token", error_description="`+headerSafe(desc)+`"`)
	}
	scopes, _ := scope.ParseList(c.Scope)
	return &caller{claims: c, scopes: scopes}, nil
}

// headerSafe keeps a quoted-string of WWW-Authenticate within the
// characters RFC 6750 §3 allows in error_description.
func headerSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteByte('\'')
		case r == '\\':
			b.WriteByte('/')
		case r >= 0x20 && r <= 0x7e:
			b.WriteRune(r)
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}

// access is what one interaction may touch: nil Cond means everything of
// the type, otherwise the resources matching Cond. Compartment is the
// context part alone (without query constraints), to tell "not yours"
// (404) from "not within your scope's constraint" (403).
type access struct {
	Cond        store.Cond
	Compartment store.Cond
	Needed      string // a scope that would allow the interaction without constraint
}

// patientFree lists the supported types that hold no patient data: they
// are in no patient compartment, and a patient/ scope for them reads them
// all (they are the practitioners, organizations, places and medications
// that patient data refers to).
var patientFree = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range spec.Types() {
		if t == "Binary" || t == "Device" || t == "Patient" {
			continue // in compartments by smartgate's own rules
		}
		if spec.CompartmentParams(t) == nil {
			m[t] = true
		}
	}
	return m
}()

// PatientFreeTypes returns the types a patient/ scope reads without a
// compartment filter, sorted (docs and tests list them).
func PatientFreeTypes() []string {
	var out []string
	for _, t := range spec.Types() {
		if patientFree[t] {
			out = append(out, t)
		}
	}
	return out
}

// userScope is the v2 user/ scope for one interaction: what a 403 names
// when the request reaches beyond the token's patient or constraint.
func userScope(typ string, perm scope.Perms) string {
	return "user/" + typ + "." + perm.String()
}

var permNames = map[scope.Perms]string{scope.PermC: "create", scope.PermR: "read", scope.PermU: "update", scope.PermD: "delete", scope.PermS: "search"}

// authorize decides one interaction: an error (403) when no granted scope
// allows it, else the access condition every resource it touches must
// satisfy.
func (a *API) authorize(ctx context.Context, c *caller, typ string, perm scope.Perms, params url.Values) (access, error) {
	d := scope.Allows(c.scopes, scope.Interaction{ResourceType: typ, Perm: perm, Params: params})
	if !d.Allowed {
		return access{}, insufficient(d.Needed, "the token's scopes (%s) do not allow %s on %s; the scope %s would", orNone(c.claims.Scope), permNames[perm], typ, d.Needed)
	}
	var conds, comps []store.Cond
	whole := false
	var why []string
	for _, m := range d.Matches {
		ctxCond, reason, err := a.contextCond(ctx, c, m.Context, typ, perm)
		if err != nil {
			return access{}, err
		}
		if reason != "" {
			why = append(why, reason)
			continue
		}
		q, err := a.constraint(typ, m.Query)
		if err != nil {
			return access{}, err
		}
		comps = append(comps, ctxCond)
		switch {
		case ctxCond == nil && q == nil:
			whole = true
		case ctxCond == nil:
			conds = append(conds, q)
		case q == nil:
			conds = append(conds, ctxCond)
		default:
			conds = append(conds, store.And{ctxCond, q})
		}
	}
	if whole {
		return access{}, nil
	}
	needed := d.Needed
	if needed == "" {
		needed = userScope(typ, perm)
	}
	if len(conds) == 0 {
		// A patient/ scope without a patient in the token: launch/patient
		// (a patient picked at launch) is what would make it usable.
		hint := needed
		if c.claims.Patient == "" && slices.ContainsFunc(d.Matches, func(m scope.Match) bool { return m.Context == "patient" }) {
			hint = "launch/patient"
		}
		return access{}, insufficient(hint, "the scopes that allow %s on %s cannot be used by this token: %s", permNames[perm], typ, strings.Join(why, "; "))
	}
	ac := access{Cond: store.Or(conds), Needed: needed}
	compartment := store.Or(comps)
	for _, x := range comps {
		if x == nil {
			compartment = nil
		}
	}
	if compartment != nil {
		ac.Compartment = compartment
	}
	return ac, nil
}

// contextCond is the condition a scope's context (patient, user, system)
// puts on resources of typ, nil when it puts none. A non-empty reason says
// why the context cannot be used at all by this token.
func (a *API) contextCond(ctx context.Context, c *caller, context, typ string, perm scope.Perms) (store.Cond, string, error) {
	switch context {
	case "system":
		return nil, "", nil
	case "patient":
		if c.claims.Patient == "" {
			return nil, "patient/ scopes need a patient in the token's launch context (launch/patient), and this token has none", nil
		}
		if patientFree[typ] {
			if perm != scope.PermR && perm != scope.PermS {
				return nil, typ + " holds no patient data, so a patient/ scope may read it but not " + permNames[perm] + " it", nil
			}
			return nil, "", nil
		}
		return compartmentCond(typ, []string{c.claims.Patient}), "", nil
	case "user":
		typ2, id, _ := index.SplitReference(c.claims.FHIRUser, a.base)
		switch typ2 {
		case "Practitioner":
			if a.practitionerAccess != "care-relationship" || patientFree[typ] {
				return nil, "", nil
			}
			return store.LinkedPatients{Type: "Practitioner", ID: id, Via: careLinks}, "", nil
		case "Patient":
			if patientFree[typ] {
				return nil, "", nil
			}
			return compartmentCond(typ, []string{id}), "", nil
		case "RelatedPerson":
			if patientFree[typ] {
				return nil, "", nil
			}
			pats, err := a.relatedPatients(ctx, id)
			if err != nil {
				return nil, "", err
			}
			return compartmentCond(typ, pats), "", nil
		}
		return nil, "user/ scopes follow the user's own access, and this token's user has no FHIR identity (fhirUser) that grants any", nil
	}
	return nil, "unknown scope context " + context, nil
}

// compartmentCond is the patients' compartments for typ. A Provenance is
// also within them when it targets a resource within them (the R4
// definition puts a Provenance in a compartment only when it targets the
// Patient itself, which would hide the provenance of a patient's own
// records from _revinclude=Provenance:target).
func compartmentCond(typ string, patients []string) store.Cond {
	in := store.InCompartment{Patients: patients}
	if typ == "Provenance" {
		return store.Or{in, store.RefersToCompartment{Param: "target", Patients: patients}}
	}
	return in
}

// careLinks are the references that link a practitioner to a patient under
// fhir.practitioner_access: care-relationship.
var careLinks = []store.Link{{Type: "Patient", Param: "general-practitioner"}, {Type: "Encounter", Param: "participant"}, {Type: "CareTeam", Param: "participant"}}

// relatedPatients are the patients a RelatedPerson user may see: the
// patient the RelatedPerson resource names.
func (a *API) relatedPatients(ctx context.Context, id string) ([]string, error) {
	r, err := a.store.ReadResource(ctx, "RelatedPerson", id, nil)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
		return nil, nil
	}
	if err != nil {
		return nil, problem.Internal(err)
	}
	ix, err := a.extract("RelatedPerson", r.Body)
	if err != nil {
		return nil, problem.Internal(err)
	}
	return ix.Patients, nil
}

// constraint compiles a scope's query constraint (e.g. category=...|laboratory)
// to a condition. Constraints are applied strictly: a parameter smartgate
// cannot evaluate matches nothing.
func (a *API) constraint(typ string, q url.Values) (store.Cond, error) {
	if len(q) == 0 {
		return nil, nil
	}
	ps, err := a.parseSearch(typ, q, true)
	if err != nil {
		return store.Or{}, nil
	}
	if ps.where == nil {
		return store.Or{}, nil
	}
	return ps.where, nil
}

func insufficient(needed, format string, args ...any) *problem.Error {
	e := problem.New(problem.InsufficientScope, format, args...)
	h := `Bearer error="insufficient_scope"`
	if needed != "" {
		h += `, scope="` + headerSafe(needed) + `"`
	}
	return e.WithHeader("WWW-Authenticate", h)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
