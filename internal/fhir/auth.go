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
	if err != nil && a.external != nil {
		c, err = a.verifyExternal(r.Context(), raw, err)
	}
	if err != nil {
		var te *token.Error
		var pe *problem.Error
		desc := "the access token could not be verified"
		switch {
		case errors.As(err, &te) && te.Reason == token.NoUsableScope:
			// A sound token that allows nothing here: insufficient scope
			// (RFC 6750 section 3.1), not a bad token.
			return nil, insufficient("", "the access token is %s: %s", te.Reason, te.Description)
		case errors.As(err, &te):
			desc = "the access token is " + string(te.Reason) + ": " + te.Description
		case errors.As(err, &pe):
			return nil, pe // an external issuer could not be reached
		default:
			return nil, problem.Internal(err)
		}
		return nil, problem.New(problem.InvalidToken, "%s", desc).
			WithHeader("WWW-Authenticate", realm+`, error="invalid_token", error_description="`+headerSafe(desc)+`"`)
	}
	if err := a.sandboxTokenError(r, c); err != nil {
		return nil, err
	}
	scopes, _ := scope.ParseList(c.Scope)
	return &caller{claims: c, scopes: scopes}, nil
}

// ExternalVerifier verifies access tokens of the external issuers an
// administrator trusts (federation.issuers; internal/extauth). Its claims
// go through the same enforcement as smartgate's own. It returns
// token.ErrNotExternal for a token it has no say on.
type ExternalVerifier interface {
	Verify(ctx context.Context, raw string) (*token.Claims, error)
}

// verifyExternal asks the external verifier about a token smartgate's own
// verifier refused as not its own (malformed for it, not issued here, or a
// signature none of its keys makes); its own tokens never take this path.
// Any other refusal, and a token the external verifier has no say on,
// keeps the own verifier's answer.
func (a *API) verifyExternal(ctx context.Context, raw string, own error) (*token.Claims, error) {
	var te *token.Error
	if !errors.As(own, &te) || (te.Reason != token.Malformed && te.Reason != token.NotIssuedHere && te.Reason != token.BadSignature) {
		return nil, own
	}
	c, err := a.external.Verify(ctx, raw)
	if errors.Is(err, token.ErrNotExternal) {
		return nil, own
	}
	return c, err
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
	// Patients, when not nil, are the only patients whose compartments the
	// caller may write into (nil: any).
	Patients []string
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
	restricted := true
	for _, x := range comps {
		if x == nil {
			compartment, restricted = nil, false
			continue
		}
		ac.Patients = append(ac.Patients, condPatients(x)...)
	}
	if compartment != nil {
		ac.Compartment = compartment
	}
	if !restricted {
		ac.Patients = nil
	}
	return ac, nil
}

// condPatients are the patients a context condition names (the
// compartments a write may touch).
func condPatients(c store.Cond) []string {
	switch c := c.(type) {
	case store.InCompartment:
		return c.Patients
	case store.Or:
		var out []string
		for _, x := range c {
			out = append(out, condPatients(x)...)
		}
		return out
	}
	return nil
}

// checkWrite refuses a write whose content reaches beyond the caller's
// patients: every compartment it would enter must be one of theirs (an
// Observation of one patient naming another as performer enters both),
// and every existing resource it would place in a compartment (the Binary
// a DocumentReference points at) must already be readable by the caller.
func (a *API) checkWrite(ctx context.Context, rd reader, c *caller, typ string, ix store.Index, ac access) error {
	if ac.Patients != nil {
		for _, p := range ix.Patients {
			if !slices.Contains(ac.Patients, p) {
				return insufficient(ac.Needed, "this %s would enter the compartment of Patient/%s, and the token may write only for %s; remove the reference or use a token for that patient", typ, p, patientList(ac.Patients))
			}
		}
	}
	// A Provenance is in the compartments of what it targets (so patients
	// see the provenance of their records): a restricted caller may only
	// target what it may read, or it would plant one in another record.
	if typ == "Provenance" && ac.Patients != nil {
		for _, r := range ix.Refs {
			if r.Param != "target" || r.Type == "" {
				continue
			}
			tac, err := a.authorize(ctx, c, r.Type, scope.PermR, nil)
			if err == nil {
				_, err = rd.ReadResource(ctx, r.Type, r.ID, tac.Cond)
			}
			if err != nil {
				var pe *problem.Error
				if !errors.As(err, &pe) && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrAccessDenied) && !errors.Is(err, store.ErrGone) {
					return problem.Internal(err)
				}
				return insufficient(userScope("Provenance", scope.PermC), "this Provenance targets %s/%s, which the token may not read (or which does not exist); a Provenance may only target records the token can read", r.Type, r.ID)
			}
		}
	}
	for _, l := range ix.Links {
		lac, err := a.authorize(ctx, c, l.Type, scope.PermR, nil)
		if err != nil {
			return insufficient(userScope(l.Type, scope.PermR), "this %s points at %s/%s, which the token may not read; it cannot give that resource to a patient", typ, l.Type, l.ID)
		}
		if lac.Cond == nil {
			continue
		}
		_, err = rd.ReadResource(ctx, l.Type, l.ID, lac.Cond)
		switch {
		case err == nil:
		case errors.Is(err, store.ErrNotFound) && ac.Patients == nil:
			// Unrestricted callers may point at a Binary they create next.
		case errors.Is(err, store.ErrNotFound):
			// Pointing at an id that does not exist yet would claim
			// whatever is stored there later for this patient.
			return insufficient(userScope(l.Type, scope.PermC), "this %s points at %s/%s, which does not exist; create the %s first (in the same transaction is fine), then point at it", typ, l.Type, l.ID, l.Type)
		case errors.Is(err, store.ErrAccessDenied), errors.Is(err, store.ErrGone):
			return insufficient(userScope(l.Type, scope.PermR), "this %s points at %s/%s, which belongs to a record this token may not read; it cannot give that resource to another patient", typ, l.Type, l.ID)
		default:
			return problem.Internal(err)
		}
	}
	return nil
}

func patientList(ps []string) string {
	if len(ps) == 0 {
		return "no patient"
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = "Patient/" + p
	}
	return strings.Join(out, ", ")
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
			linked := store.LinkedPatients{Type: "Practitioner", ID: id, Via: careLinks}
			if perm == scope.PermR || perm == scope.PermS {
				return linked, "", nil
			}
			// A write is checked after it is made; resolve the linked
			// patients first, so that a write cannot create the very link
			// (an Encounter naming the practitioner) that would allow it.
			pats, err := a.linkedPatients(ctx, linked)
			if err != nil {
				return nil, "", err
			}
			return compartmentCond(typ, pats), "", nil
		case "Patient", "RelatedPerson":
			if patientFree[typ] {
				if perm != scope.PermR && perm != scope.PermS {
					return nil, typ + " holds no patient data, so a patient's or related person's user/ scope may read it but not " + permNames[perm] + " it", nil
				}
				return nil, "", nil
			}
			if typ2 == "Patient" {
				return compartmentCond(typ, []string{id}), "", nil
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

// maxLinkedPatients bounds the patients a care-relationship write check
// resolves; a practitioner linked to more is refused writes with a clear
// reason rather than checked partially.
const maxLinkedPatients = 10000

func (a *API) linkedPatients(ctx context.Context, linked store.LinkedPatients) ([]string, error) {
	res, err := a.store.Search(ctx, store.Query{Type: "Patient", Where: linked, Page: store.Page{Count: maxLinkedPatients}})
	if err != nil {
		return nil, problem.Internal(err)
	}
	if res.More {
		return nil, problem.New(problem.InsufficientScope, "this practitioner is linked to more than %d patients, too many for fhir.practitioner_access: care-relationship to check a write; ask an administrator", maxLinkedPatients)
	}
	pats := make([]string, len(res.Resources))
	for i, f := range res.Resources {
		pats[i] = f.ID
	}
	return pats, nil
}

// guardChains makes every chained search parameter subject to the
// caller's search access on the chain's target type: a chain may not
// filter by resources the token may not search (that would reveal them).
func (a *API) guardChains(ctx context.Context, c *caller, cond store.Cond) (store.Cond, error) {
	switch x := cond.(type) {
	case store.And:
		out := make(store.And, len(x))
		for i, y := range x {
			g, err := a.guardChains(ctx, c, y)
			if err != nil {
				return nil, err
			}
			out[i] = g
		}
		return out, nil
	case store.Or:
		out := make(store.Or, len(x))
		for i, y := range x {
			g, err := a.guardChains(ctx, c, y)
			if err != nil {
				return nil, err
			}
			out[i] = g
		}
		return out, nil
	case store.Not:
		g, err := a.guardChains(ctx, c, x.Cond)
		if err != nil {
			return nil, err
		}
		return store.Not{Cond: g}, nil
	case store.Chain:
		ac, err := a.authorize(ctx, c, x.TargetType, scope.PermS, nil)
		if err != nil {
			return nil, err
		}
		x.Where = and(x.Where, ac.Cond)
		return x, nil
	}
	return cond, nil
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
