package fhir

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"smartgate/internal/fhir/validate"
	"smartgate/internal/problem"
	"smartgate/internal/scope"
	"smartgate/internal/store"
)

// result is what one interaction produced, for the HTTP layer or a Bundle
// entry to render.
type result struct {
	status   int
	body     []byte         // a resource, a Bundle, or nil
	res      store.Resource // the version written or read (ETag, Last-Modified), zero if none
	location string
}

func (a *API) fullURL(typ, id string) string { return a.base + "/" + typ + "/" + id }

func (a *API) versionURL(res store.Resource) string {
	return a.fullURL(res.Type, res.ID) + "/_history/" + strconv.FormatInt(res.Version, 10)
}

// --- read and vread ---

// reader is what reads need: the store, or a transaction (whose reads see
// its own writes).
type reader interface {
	ReadResource(ctx context.Context, typ, id string, access store.Cond) (store.Resource, error)
	Search(ctx context.Context, q store.Query) (store.SearchResult, error)
	Includes(ctx context.Context, from []int64, inc store.Include, limit int) ([]store.Found, error)
}

func (a *API) read(ctx context.Context, rd reader, c *caller, typ, id string) (result, error) {
	ac, err := a.authorize(ctx, c, typ, scope.PermR, nil)
	if err != nil {
		return result{}, err
	}
	res, err := rd.ReadResource(ctx, typ, id, ac.Cond)
	if err != nil {
		return result{}, a.readError(ctx, typ, id, ac, res, err)
	}
	return result{status: http.StatusOK, body: redact(typ, res.Body, ac), res: res}, nil
}

// redact hides what a caller restricted to some patients may not see in a
// resource it may read: a Group is in the compartment of each member, so
// a member reading it would otherwise learn every other member's id. The
// other members are removed and the resource marked SUBSETTED.
func redact(typ string, body []byte, ac access) []byte {
	if typ != "Group" || ac.Patients == nil {
		return body
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return body
	}
	var members []json.RawMessage
	if json.Unmarshal(m["member"], &members) != nil || len(members) == 0 {
		return body
	}
	var kept []json.RawMessage
	for _, raw := range members {
		var mem struct {
			Entity struct {
				Reference string `json:"reference"`
			} `json:"entity"`
		}
		_ = json.Unmarshal(raw, &mem)
		t, id, _ := strings.Cut(mem.Entity.Reference, "/")
		if t == "Patient" && slices.Contains(ac.Patients, id) {
			kept = append(kept, raw)
		}
	}
	if len(kept) == len(members) {
		return body
	}
	if len(kept) == 0 {
		delete(m, "member")
	} else {
		m["member"], _ = json.Marshal(kept)
	}
	delete(m, "quantity")
	return subsetted(m, body)
}

// readError turns a store error of a read into the answer DESIGN.md's
// status table gives.
func (a *API) readError(ctx context.Context, typ, id string, ac access, res store.Resource, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return problem.New(problem.ResourceNotFound, "%s/%s does not exist", typ, id)
	case errors.Is(err, store.ErrGone):
		return problem.New(problem.ResourceDeleted, "%s/%s was deleted (version %d)", typ, id, res.Version).
			WithHeader("ETag", `W/"`+strconv.FormatInt(res.Version, 10)+`"`)
	case errors.Is(err, store.ErrAccessDenied):
		return a.denied(ctx, typ, id, ac)
	}
	return problem.Internal(err)
}

// denied explains a resource the access condition excluded: outside the
// token's compartment it does not exist for this caller (404); inside it,
// a granular scope's constraint excluded it (403 naming the scope).
func (a *API) denied(ctx context.Context, typ, id string, ac access) error {
	if ac.Compartment != nil {
		if _, err := a.store.ReadResource(ctx, typ, id, ac.Compartment); errors.Is(err, store.ErrAccessDenied) || errors.Is(err, store.ErrNotFound) {
			return problem.New(problem.ResourceNotFound, "%s/%s does not exist", typ, id)
		}
	}
	return insufficient(ac.Needed, "%s/%s is outside what the token's scopes allow (a granular scope's query constraint excludes it); the scope %s would allow it", typ, id, ac.Needed)
}

func (a *API) vread(ctx context.Context, c *caller, typ, id string, version int64) (result, error) {
	ac, err := a.authorize(ctx, c, typ, scope.PermR, nil)
	if err != nil {
		return result{}, err
	}
	cur, err := a.store.ReadResource(ctx, typ, id, ac.Cond)
	if err != nil && !errors.Is(err, store.ErrGone) {
		return result{}, a.readError(ctx, typ, id, ac, cur, err)
	}
	res, err := a.store.ReadVersion(ctx, typ, id, version)
	if errors.Is(err, store.ErrNotFound) {
		return result{}, problem.New(problem.ResourceNotFound, "%s/%s has no version %d (the current version is %d)", typ, id, version, cur.Version)
	}
	if err != nil {
		return result{}, problem.Internal(err)
	}
	if res.Deleted {
		return result{}, problem.New(problem.ResourceDeleted, "version %d of %s/%s is its deletion", version, typ, id)
	}
	// The current version is within access; this one must be too (it may
	// have belonged to another patient, or not matched a scope's constraint).
	ok, err := a.versionVisible(ctx, a.store, res, ac.Cond)
	if err != nil {
		return result{}, err
	}
	if !ok {
		if ac.Compartment != nil {
			inComp, err := a.versionVisible(ctx, a.store, res, ac.Compartment)
			if err != nil {
				return result{}, err
			}
			if !inComp {
				return result{}, problem.New(problem.ResourceNotFound, "%s/%s has no version %d that this token may read", typ, id, version)
			}
		}
		return result{}, insufficient(ac.Needed, "version %d of %s/%s is outside what the token's scopes allow (a granular scope's query constraint excludes it); the scope %s would allow it", version, typ, id, ac.Needed)
	}
	return result{status: http.StatusOK, body: redact(typ, res.Body, ac), res: res}, nil
}

// --- writes ---

// prepare validates a resource body for typ and fixes its id, returning
// the body to store and its index.
func (a *API) prepare(typ, id string, body []byte) ([]byte, store.Index, error) {
	b, _, ix, err := a.prepareAs(typ, id, body, false)
	return b, ix, err
}

// prepareNew is prepare for a bulk load's creates: the body it returns
// also carries meta.versionId 1 and a meta.lastUpdated that the store
// stamps at its offset (store.MetaTemplate), so that the one writer does
// not rewrite every body.
func (a *API) prepareNew(typ, id string, body []byte) ([]byte, int, store.Index, error) {
	return a.prepareAs(typ, id, body, true)
}

func (a *API) prepareAs(typ, id string, body []byte, template bool) ([]byte, int, store.Index, error) {
	if bytes.Contains(body, []byte(`\u0000`)) {
		return nil, 0, store.Index{}, problem.New(problem.ResourceInvalid, "the %s holds a NUL character (\\u0000), which FHIR strings may not contain", typ)
	}
	rt, issues := validate.Resource(body)
	var errs []problem.Issue
	for _, is := range issues {
		if is.Severity == "error" {
			errs = append(errs, problem.Issue{Severity: is.Severity, Code: is.Code, Expression: is.Expression, Diagnostics: is.Diagnostics})
		}
	}
	if rt != "" && rt != typ {
		return nil, 0, store.Index{}, problem.New(problem.ResourceInvalid, "the body is a %s but the request is for %s; send it to /fhir/%s", clip(rt), typ, clip(rt))
	}
	if len(errs) > 0 {
		pe := problem.New(problem.ResourceInvalid, "the %s is not valid FHIR R4: %d problem(s), the first at %s: %s", typ, len(errs), errs[0].Expression, errs[0].Diagnostics)
		pe.Issues = errs
		return nil, 0, store.Index{}, pe
	}
	var withID []byte
	var metaAt int
	var err error
	if template {
		withID, metaAt, err = store.MetaTemplate(body, typ, id, 1)
	} else {
		withID, err = store.SetMeta(body, typ, id, 0, time.Time{})
	}
	if err != nil {
		return nil, 0, store.Index{}, problem.New(problem.ResourceInvalid, "the body is not a JSON object")
	}
	ix, err := a.extract(typ, withID)
	if err != nil {
		return nil, 0, store.Index{}, problem.Wrap(problem.ResourceInvalid, err, "the %s could not be indexed for search (a date, number or reference has a value smartgate cannot read); check its dates and references", typ)
	}
	return withID, metaAt, ix, nil
}

// writeError turns a store error of a write into its answer.
func (a *API) writeError(ctx context.Context, typ, id string, ac access, err error) error {
	switch {
	case errors.Is(err, store.ErrVersionConflict):
		return problem.New(problem.PreconditionFailed, "If-Match names a version of %s/%s that is not the current one; read it again and send the current ETag", typ, id)
	case errors.Is(err, store.ErrNotFound):
		return problem.New(problem.ResourceNotFound, "%s/%s does not exist", typ, id)
	case errors.Is(err, store.ErrConflict):
		return problem.New(problem.VersionConflict, "another request created %s/%s at the same moment; read it and retry", typ, id)
	case errors.Is(err, store.ErrAccessDenied):
		if ac.Compartment != nil {
			if _, rerr := a.store.ReadResource(ctx, typ, id, ac.Compartment); errors.Is(rerr, store.ErrAccessDenied) {
				return problem.New(problem.ResourceNotFound, "%s/%s does not exist", typ, id)
			}
		}
		return insufficient(ac.Needed, "the %s as written would be outside what the token's scopes allow (for a patient/ scope: it must stay in the compartment of the token's patient; for a granular scope: it must match the scope's query)", typ)
	}
	var pe *problem.Error
	if errors.As(err, &pe) {
		return pe
	}
	return problem.Internal(err)
}

func (a *API) create(ctx context.Context, tx store.FHIRTx, c *caller, typ, id string, body []byte, ifNoneExist string) (result, error) {
	ac, err := a.authorize(ctx, c, typ, scope.PermC, nil)
	if err != nil {
		return result{}, err
	}
	if ifNoneExist != "" {
		found, n, err := a.conditional(ctx, tx, c, typ, ifNoneExist, "If-None-Exist")
		if err != nil {
			return result{}, err
		}
		switch {
		case n == 1:
			return result{status: http.StatusOK, body: found.Body, res: found.Resource, location: a.versionURL(found.Resource)}, nil
		case n > 1:
			return result{}, problem.New(problem.PreconditionFailed, "If-None-Exist matches more than one %s; make the criteria specific enough to match at most one", typ)
		}
	}
	if id == "" {
		id = newID()
	}
	stored, ix, err := a.prepare(typ, id, body)
	if err != nil {
		return result{}, err
	}
	if err := a.checkWrite(ctx, tx, c, typ, ix, ac); err != nil {
		return result{}, err
	}
	res, err := tx.Put(ctx, store.Write{Type: typ, ID: id, Body: stored, Index: ix, Access: ac.Cond})
	if err != nil {
		return result{}, a.writeError(ctx, typ, id, ac, err)
	}
	return result{status: http.StatusCreated, body: res.Body, res: res, location: a.versionURL(res)}, nil
}

// conditional runs the search of a conditional interaction inside tx,
// under the caller's search access, and returns the match when there is
// exactly one, and how many there are (up to 2).
func (a *API) conditional(ctx context.Context, tx store.FHIRTx, c *caller, typ, query, header string) (store.Found, int, error) {
	params, err := url.ParseQuery(strings.TrimPrefix(query, "?"))
	if err != nil || len(params) == 0 {
		return store.Found{}, 0, problem.New(problem.InvalidRequest, "%s must be search parameters such as identifier=http://example.org|123, got %q", header, clip(query))
	}
	ps, err := a.parseSearch(typ, params, true)
	if err != nil {
		return store.Found{}, 0, err
	}
	ac, err := a.authorize(ctx, c, typ, scope.PermS, ps.criteria())
	if err != nil {
		return store.Found{}, 0, err
	}
	where, err := a.guardChains(ctx, c, ps.where)
	if err != nil {
		return store.Found{}, 0, err
	}
	if err := tx.Lock(ctx, typ+"?"+ps.self.Encode()); err != nil {
		return store.Found{}, 0, problem.Internal(err)
	}
	res, err := tx.Search(ctx, store.Query{Type: typ, Where: and(where, ac.Cond), Page: store.Page{Count: 2}})
	if err != nil {
		return store.Found{}, 0, problem.Internal(err)
	}
	if len(res.Resources) == 1 {
		return res.Resources[0], 1, nil
	}
	return store.Found{}, len(res.Resources), nil
}

func and(a, b store.Cond) store.Cond {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return store.And{a, b}
}

func (a *API) update(ctx context.Context, tx store.FHIRTx, c *caller, typ, id string, body []byte, ifMatch string) (result, error) {
	var bodyID struct {
		ID *string `json:"id"`
	}
	if json.Unmarshal(body, &bodyID) == nil {
		switch {
		case bodyID.ID == nil:
			return result{}, problem.New(problem.ResourceInvalid, "an update must carry the id in the body (FHIR R4 §3.1.0.4); add \"id\": %q", id)
		case *bodyID.ID != id:
			return result{}, problem.New(problem.ResourceInvalid, "the body's id %q differs from the id %q in the URL; they must be equal", clip(*bodyID.ID), id)
		}
	}
	var version int64
	if ifMatch != "" {
		v := strings.TrimPrefix(strings.TrimSpace(ifMatch), "W/")
		n, err := strconv.ParseInt(strings.Trim(v, `"`), 10, 64)
		if err != nil || n < 1 {
			return result{}, problem.New(problem.InvalidRequest, "If-Match must be an ETag this server sent, such as W/\"3\", got %q", clip(ifMatch))
		}
		version = n
	}
	perm := scope.PermU
	_, err := tx.Current(ctx, typ, id)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
		perm = scope.PermC // update as create
	} else if err != nil {
		return result{}, problem.Internal(err)
	}
	ac, err := a.authorize(ctx, c, typ, perm, nil)
	if err != nil {
		return result{}, err
	}
	stored, ix, err := a.prepare(typ, id, body)
	if err != nil {
		return result{}, err
	}
	if err := a.checkWrite(ctx, tx, c, typ, ix, ac); err != nil {
		return result{}, err
	}
	res, err := tx.Put(ctx, store.Write{Type: typ, ID: id, Body: stored, Index: ix, Access: ac.Cond, IfMatch: version, Method: "update"})
	if err != nil {
		return result{}, a.writeError(ctx, typ, id, ac, err)
	}
	status := http.StatusOK
	if perm == scope.PermC {
		status = http.StatusCreated
	}
	return result{status: status, body: res.Body, res: res, location: a.versionURL(res)}, nil
}

func (a *API) delete(ctx context.Context, tx store.FHIRTx, c *caller, typ, id string) (result, error) {
	ac, err := a.authorize(ctx, c, typ, scope.PermD, nil)
	if err != nil {
		return result{}, err
	}
	cur, err := tx.Current(ctx, typ, id)
	if errors.Is(err, store.ErrNotFound) {
		return result{}, problem.New(problem.ResourceNotFound, "%s/%s does not exist", typ, id)
	}
	if err != nil && !errors.Is(err, store.ErrGone) {
		return result{}, problem.Internal(err)
	}
	res, err := tx.Put(ctx, store.Write{Type: typ, ID: id, Delete: true, Access: ac.Cond})
	if err != nil {
		return result{}, a.writeError(ctx, typ, id, ac, err)
	}
	if res.Version == 0 {
		res = cur // already deleted: idempotent
	}
	return result{status: http.StatusNoContent, res: res}, nil
}

// --- HTTP wrappers ---

// checkShape refuses _summary values a read cannot honour.
func checkShape(r *http.Request) error {
	switch v := r.URL.Query().Get("_summary"); v {
	case "", "true", "false", "data", "text":
		return nil
	default:
		return searchError("_summary", "a read takes _summary=true, data, text or false (count is for searches), got %q", clip(v))
	}
}

func (a *API) readHTTP(w http.ResponseWriter, r *http.Request, c *caller, typ, id string) error {
	if err := checkShape(r); err != nil {
		return err
	}
	out, err := a.read(r.Context(), a.store, c, typ, id)
	if err := a.recordOutcome(r.Context(), c, "fhir.read", auditDetail("resource", typ+"/"+id), err); err != nil {
		return err
	}
	versionHeaders(w.Header(), out.res)
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == w.Header().Get("ETag") {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	if typ == "Binary" && wantsRaw(r) {
		return writeBinary(w, out.body)
	}
	return writeJSON(w, r, out.status, a.shape(out.body, r.URL.Query()))
}

func (a *API) vreadHTTP(w http.ResponseWriter, r *http.Request, c *caller, typ, id string, v int64) error {
	if err := checkShape(r); err != nil {
		return err
	}
	out, err := a.vread(r.Context(), c, typ, id, v)
	if err := a.recordOutcome(r.Context(), c, "fhir.vread", auditDetail("resource", typ+"/"+id, "version", strconv.FormatInt(v, 10)), err); err != nil {
		return err
	}
	versionHeaders(w.Header(), out.res)
	return writeJSON(w, r, out.status, a.shape(out.body, r.URL.Query()))
}

// writeHTTP runs one write in its own transaction and answers it with
// Prefer: return=minimal|representation|OperationOutcome.
func (a *API) writeHTTP(w http.ResponseWriter, r *http.Request, c *caller, action, typ string, fn func(ctx context.Context, tx store.FHIRTx) (result, error)) error {
	var out result
	err := a.store.WriteFHIR(r.Context(), func(tx store.FHIRTx) error {
		var err error
		out, err = fn(r.Context(), tx)
		return err
	})
	if err != nil {
		a.record(r.Context(), c, action, "failure", auditDetail("type", typ))
		var pe *problem.Error
		if errors.As(err, &pe) {
			return pe
		}
		return a.writeError(r.Context(), typ, "", access{}, err)
	}
	a.record(r.Context(), c, action, "success", auditDetail("resource", out.res.Type+"/"+out.res.ID, "version", strconv.FormatInt(out.res.Version, 10)))
	h := w.Header()
	if out.res.Version > 0 {
		versionHeaders(h, out.res)
	}
	if out.location != "" {
		h.Set("Location", out.location)
	}
	if out.status == http.StatusNoContent {
		if preferReturn(r) == "OperationOutcome" {
			return writeJSON(w, r, http.StatusOK, informational("deleted "+typ))
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	switch preferReturn(r) {
	case "minimal":
		w.WriteHeader(out.status)
		return nil
	case "OperationOutcome":
		return writeJSON(w, r, out.status, informational("stored "+out.res.Type+"/"+out.res.ID+" version "+strconv.FormatInt(out.res.Version, 10)))
	}
	return writeJSON(w, r, out.status, out.body)
}

func (a *API) createHTTP(w http.ResponseWriter, r *http.Request, c *caller, typ string) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	return a.writeHTTP(w, r, c, "fhir.create", typ, func(ctx context.Context, tx store.FHIRTx) (result, error) {
		return a.create(ctx, tx, c, typ, "", body, r.Header.Get("If-None-Exist"))
	})
}

func (a *API) updateHTTP(w http.ResponseWriter, r *http.Request, c *caller, typ, id string) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	return a.writeHTTP(w, r, c, "fhir.update", typ, func(ctx context.Context, tx store.FHIRTx) (result, error) {
		return a.update(ctx, tx, c, typ, id, body, r.Header.Get("If-Match"))
	})
}

func (a *API) deleteHTTP(w http.ResponseWriter, r *http.Request, c *caller, typ, id string) error {
	return a.writeHTTP(w, r, c, "fhir.delete", typ, func(ctx context.Context, tx store.FHIRTx) (result, error) {
		return a.delete(ctx, tx, c, typ, id)
	})
}

// preferReturn is the return preference of a write (RFC 7240, FHIR R4 §3.1.0.8).
func preferReturn(r *http.Request) string {
	for _, v := range r.Header.Values("Prefer") {
		for _, part := range strings.Split(v, ",") {
			if k, val, ok := strings.Cut(strings.TrimSpace(part), "="); ok && strings.TrimSpace(k) == "return" {
				return strings.Trim(strings.TrimSpace(val), `"`)
			}
		}
	}
	return "representation"
}

// strictHandling reports Prefer: handling=strict.
func strictHandling(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for _, part := range strings.Split(v, ",") {
			if strings.ReplaceAll(strings.TrimSpace(part), " ", "") == "handling=strict" {
				return true
			}
		}
	}
	return false
}

func informational(text string) []byte {
	b, _ := json.Marshal(map[string]any{
		"resourceType": "OperationOutcome",
		"issue":        []map[string]any{{"severity": "information", "code": "informational", "diagnostics": text}},
	})
	return b
}

// wantsRaw reports whether a Binary read asks for the content itself
// rather than the FHIR resource (FHIR R4 binary.html#rest).
func wantsRaw(r *http.Request) bool {
	if r.URL.Query().Get("_format") != "" {
		return false
	}
	accept := r.Header.Get("Accept")
	return accept != "" && !strings.Contains(accept, "json") && !strings.Contains(accept, "*/*")
}

func writeBinary(w http.ResponseWriter, body []byte) error {
	var b struct {
		ContentType string `json:"contentType"`
		Data        string `json:"data"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return problem.Internal(err)
	}
	data, err := base64.StdEncoding.DecodeString(b.Data)
	if err != nil {
		return problem.Internal(err)
	}
	w.Header().Set("Content-Type", b.ContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "sandbox")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
	return nil
}
