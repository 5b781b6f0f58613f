package fhir

import (
	"bytes"
	"context"
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

// searchRun is one executed search page.
func (a *API) searchRun(ctx context.Context, rd reader, c *caller, typ string, params url.Values, strict bool) ([]byte, error) {
	ps, err := a.parseSearch(typ, params, strict)
	if err != nil {
		return nil, err
	}
	// Only parameters the search really applies may satisfy a granular
	// scope's constraint (an unknown one is ignored, so it must not count).
	ac, err := a.authorize(ctx, c, typ, scope.PermS, ps.criteria())
	if err != nil {
		return nil, err
	}
	where, err := a.guardChains(ctx, c, ps.where)
	if err != nil {
		return nil, err
	}
	q := store.Query{Type: typ, Where: and(where, ac.Cond), Sort: ps.sort,
		Page: store.Page{Count: ps.count, After: ps.after, AfterValues: ps.afterVal, Total: ps.total != "none"}}
	if ps.summary == "count" {
		q.Page.Count, q.Page.Total = 0, true
	}
	res, err := rd.Search(ctx, q)
	if err != nil {
		return nil, problem.Internal(err)
	}
	var included []store.Found
	if len(ps.includes) > 0 && len(res.Resources) > 0 {
		if included, err = a.includes(ctx, rd, c, res.Resources, ps.includes); err != nil {
			return nil, err
		}
	}
	b := &bundleWriter{}
	b.start("searchset")
	if res.Total >= 0 {
		b.raw("total", strconv.Itoa(res.Total))
	}
	links := [][2]string{{"self", withQuery(a.base+"/"+typ, ps.self)}}
	if res.More {
		next := cloneValues(ps.self)
		last := res.Resources[len(res.Resources)-1]
		next.Set("_cursor", encodeCursor(last.Key, last.SortValues))
		links = append(links, [2]string{"next", withQuery(a.base+"/"+typ, next)})
	}
	b.links(links)
	shape := url.Values{}
	if ps.summary != "" && ps.summary != "count" {
		shape.Set("_summary", ps.summary)
	}
	if len(ps.elements) > 0 {
		shape.Set("_elements", strings.Join(ps.elements, ","))
	}
	for _, f := range res.Resources {
		b.entry(a.fullURL(f.Type, f.ID), a.shape(redact(f.Type, f.Body, ac), shape), `{"mode":"match"}`, "", "")
	}
	for _, f := range included {
		iac := ac
		if f.Type != typ {
			iac, _ = a.authorize(ctx, c, f.Type, scope.PermR, nil)
		}
		b.entry(a.fullURL(f.Type, f.ID), redact(f.Type, f.Body, iac), `{"mode":"include"}`, "", "")
	}
	return b.finish(), nil
}

// includes follows _include and _revinclude from the page's matches, and
// keeps only what the caller may read (an included resource of another
// patient, or of a type no scope allows, is left out).
func (a *API) includes(ctx context.Context, rd reader, c *caller, matches []store.Found, incs []store.Include) ([]store.Found, error) {
	keys := make([]int64, len(matches))
	seen := map[int64]bool{}
	for i, f := range matches {
		keys[i] = f.Key
		seen[f.Key] = true
	}
	var out []store.Found
	for _, inc := range incs {
		found, err := rd.Includes(ctx, keys, inc, maxIncluded)
		if err != nil {
			return nil, problem.Internal(err)
		}
		byType := map[string][]store.Found{}
		for _, f := range found {
			if !seen[f.Key] {
				byType[f.Type] = append(byType[f.Type], f)
			}
		}
		types := make([]string, 0, len(byType))
		for t := range byType {
			types = append(types, t)
		}
		slices.Sort(types)
		for _, t := range types {
			fs := byType[t]
			ac, err := a.authorize(ctx, c, t, scope.PermR, nil)
			if err != nil {
				continue // no scope reads this type: leave it out
			}
			if ac.Cond != nil {
				ks := make([]int64, len(fs))
				for i, f := range fs {
					ks[i] = f.Key
				}
				res, err := rd.Search(ctx, store.Query{Type: t, Where: store.And{store.KeyIn{Keys: ks}, ac.Cond}, Page: store.Page{Count: len(ks)}})
				if err != nil {
					return nil, problem.Internal(err)
				}
				fs = res.Resources
			}
			for _, f := range fs {
				if !seen[f.Key] {
					seen[f.Key] = true
					out = append(out, f)
				}
			}
		}
	}
	return out, nil
}

// withQuery is path with the query, without a dangling "?" when empty.
func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// instant formats a stored time as meta.lastUpdated does (microseconds, UTC).
func instant(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func (a *API) searchHTTP(w http.ResponseWriter, r *http.Request, c *caller, typ string, params url.Values) error {
	body, err := a.searchRun(r.Context(), a.store, c, typ, params, strictHandling(r))
	if err != nil {
		a.record(r.Context(), c, "fhir.search", "failure", auditDetail("type", typ))
		return err
	}
	a.record(r.Context(), c, "fhir.search", "success", auditDetail("type", typ, "query", params.Encode()))
	return writeJSON(w, r, http.StatusOK, body)
}

// historyHTTP serves type and instance _history, recorded (a refusal
// as a failure) as a read or a search is.
func (a *API) historyHTTP(w http.ResponseWriter, r *http.Request, c *caller, typ, id string) error {
	body, err := a.history(r.Context(), c, r.URL.Query(), typ, id)
	if err := a.recordOutcome(r.Context(), c, "fhir.history", auditDetail("type", typ, "id", id), err); err != nil {
		return err
	}
	return writeJSON(w, r, http.StatusOK, body)
}

// history is the Bundle of a type's or a resource's _history.
func (a *API) history(ctx context.Context, c *caller, params url.Values, typ, id string) ([]byte, error) {
	perm := scope.PermS
	if id != "" {
		perm = scope.PermR
	}
	ac, err := a.authorize(ctx, c, typ, perm, nil)
	if err != nil {
		return nil, err
	}
	if id != "" {
		if cur, err := a.store.ReadResource(ctx, typ, id, ac.Cond); err != nil && !errors.Is(err, store.ErrGone) {
			return nil, a.readError(ctx, typ, id, ac, cur, err)
		}
	}
	q := store.HistoryQuery{Type: typ, ID: id, Count: defaultCount, Where: ac.Cond}
	self := url.Values{}
	if v := params.Get("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, searchError("_count", "must be a whole number from 1 to %d, got %q", maxCount, v)
		}
		q.Count = min(n, maxCount)
		self.Set("_count", strconv.Itoa(q.Count))
	}
	for _, name := range []string{"_since", "_at"} {
		v := params.Get(name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, searchError(name, "must be an instant such as 2024-01-31T12:00:00Z, got %q", v)
		}
		if name == "_since" {
			q.Since = t
		} else {
			q.At = t
		}
		self.Set(name, v)
	}
	if v := params.Get("_cursor"); v != "" {
		ts, key, ok := strings.Cut(v, "-")
		t, err1 := strconv.ParseInt(ts, 10, 64)
		k, err2 := strconv.ParseInt(key, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, searchError("_cursor", "is a paging cursor from a next link; do not change it")
		}
		q.BeforeTime, q.BeforeKey = time.UnixMicro(t), k
	}
	entries, more, err := a.store.History(ctx, q)
	if err != nil {
		return nil, problem.Internal(err)
	}
	// Where keeps resources whose current version is within access; each
	// earlier version must be too, on its own content.
	var cursorAt *store.HistoryEntry
	if len(entries) > 0 {
		cursorAt = &entries[len(entries)-1]
	}
	visible := entries[:0:0]
	for _, e := range entries {
		ok, err := a.versionVisible(ctx, a.store, e.Resource, ac.Cond)
		if err != nil {
			return nil, err
		}
		if ok {
			visible = append(visible, e)
		}
	}
	path := a.base + "/" + typ
	if id != "" {
		path += "/" + id
	}
	path += "/_history"
	b := &bundleWriter{}
	b.start("history")
	links := [][2]string{{"self", withQuery(path, self)}}
	if more {
		last := *cursorAt
		next := cloneValues(self)
		next.Set("_cursor", strconv.FormatInt(last.LastUpdated.UnixMicro(), 10)+"-"+strconv.FormatInt(last.Key, 10))
		links = append(links, [2]string{"next", withQuery(path, next)})
	}
	b.links(links)
	for _, e := range visible {
		method, status := "PUT", "200 OK"
		switch e.Method {
		case "create":
			method, status = "POST", "201 Created"
		case "delete":
			method, status = "DELETE", "204 No Content"
		}
		if e.Method == "update" && e.Version == 1 {
			status = "201 Created" // an update that created the resource
		}
		reqURL := e.Type + "/" + e.ID
		if method == "POST" {
			reqURL = e.Type
		}
		req, _ := json.Marshal(map[string]string{"method": method, "url": reqURL})
		resp, _ := json.Marshal(map[string]string{"status": status, "etag": `W/"` + strconv.FormatInt(e.Version, 10) + `"`, "lastModified": instant(e.LastUpdated)})
		body := e.Body
		if body != nil {
			body = redact(e.Type, body, ac)
		}
		b.entry(a.fullURL(e.Type, e.ID), body, "", string(req), string(resp))
	}
	return b.finish(), nil
}

// bundleWriter writes a Bundle without re-encoding the resources in it.
type bundleWriter struct {
	buf     bytes.Buffer
	entries int
}

func (b *bundleWriter) start(typ string) {
	b.buf.WriteString(`{"resourceType":"Bundle","id":"` + newID() + `","meta":{"lastUpdated":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"},"type":"` + typ + `"`)
}

func (b *bundleWriter) raw(key, value string) {
	b.buf.WriteString(`,"` + key + `":` + value)
}

func (b *bundleWriter) links(links [][2]string) {
	b.buf.WriteString(`,"link":[`)
	for i, l := range links {
		if i > 0 {
			b.buf.WriteByte(',')
		}
		u, _ := json.Marshal(l[1])
		b.buf.WriteString(`{"relation":"` + l[0] + `","url":`)
		b.buf.Write(u)
		b.buf.WriteByte('}')
	}
	b.buf.WriteByte(']')
}

// entry appends one entry; empty parts are left out.
func (b *bundleWriter) entry(fullURL string, resource []byte, search, request, response string) {
	if b.entries == 0 {
		b.buf.WriteString(`,"entry":[`)
	} else {
		b.buf.WriteByte(',')
	}
	b.entries++
	b.buf.WriteByte('{')
	sep := ""
	if fullURL != "" {
		u, _ := json.Marshal(fullURL)
		b.buf.WriteString(`"fullUrl":`)
		b.buf.Write(u)
		sep = ","
	}
	for _, kv := range [][2]string{{"resource", string(resource)}, {"search", search}, {"request", request}, {"response", response}} {
		if kv[1] == "" {
			continue
		}
		b.buf.WriteString(sep + `"` + kv[0] + `":` + kv[1])
		sep = ","
	}
	b.buf.WriteByte('}')
}

func (b *bundleWriter) finish() []byte {
	if b.entries > 0 {
		b.buf.WriteByte(']')
	}
	b.buf.WriteByte('}')
	return b.buf.Bytes()
}

// shape applies _elements and _summary (true, text, data, false) to one
// resource, as https://hl7.org/fhir/R4/search.html#summary and #elements
// define them; the result is marked SUBSETTED as FHIR R4 §3.1.1.5.9 asks.
// _elements wins when both are given. Only top-level elements are chosen: a
// kept element keeps all it holds.
func (a *API) shape(body []byte, params url.Values) []byte {
	summary := params.Get("_summary")
	elements := params.Get("_elements")
	if elements == "" && (summary == "" || summary == "false") {
		return body
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return body
	}
	keep := map[string]bool{"resourceType": true, "id": true, "meta": true}
	switch {
	case elements != "":
		for _, e := range strings.Split(elements, ",") {
			e = strings.TrimSpace(e)
			if i := strings.IndexByte(e, '.'); i >= 0 {
				e = e[i+1:] // Patient.name -> name
			}
			keep[e] = true
		}
		// choice elements: _elements=value keeps valueQuantity etc.
		for k := range m {
			for e := range keep {
				if strings.HasPrefix(k, e) && len(k) > len(e) && k[len(e)] >= 'A' && k[len(e)] <= 'Z' {
					keep[k] = true
				}
			}
		}
	case summary == "true":
		// "All supporting elements marked as summary in the base
		// definition" (choice variants spelt out), which include
		// implicitRules; and modifierExtension, which R4's snapshots do
		// not mark although ElementDefinition.isSummary says a top-level
		// modifier must be: dropping it would let a client read the
		// summary without what changes its meaning.
		keepAll(keep, validate.SummaryElements(resourceTypeOf(m)))
		keep["implicitRules"], keep["modifierExtension"] = true, true
	case summary == "text":
		// "The text, id, meta, and only top-level mandatory elements."
		keep["text"] = true
		keepAll(keep, validate.MandatoryElements(resourceTypeOf(m)))
	case summary == "data":
		for k := range m {
			keep[k] = k != "text"
		}
	}
	for k := range m {
		if !keep[k] {
			delete(m, k)
		}
	}
	return subsetted(m, body)
}

// keepAll marks every name in names kept.
func keepAll(keep map[string]bool, names []string) {
	for _, n := range names {
		keep[n] = true
	}
}

// resourceTypeOf is the resourceType of a decoded resource; "" when it is
// missing or not a string, which selects no elements.
func resourceTypeOf(m map[string]json.RawMessage) string {
	var t string
	_ = json.Unmarshal(m["resourceType"], &t)
	return t
}

// subsetted encodes a shortened resource m with the SUBSETTED tag in its
// meta (FHIR R4 §3.1.1.5.9), or returns body when m cannot be encoded.
func subsetted(m map[string]json.RawMessage, body []byte) []byte {
	var meta map[string]any
	_ = json.Unmarshal(m["meta"], &meta)
	if meta == nil {
		meta = map[string]any{}
	}
	tags, _ := meta["tag"].([]any)
	meta["tag"] = append(tags, map[string]string{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"})
	m["meta"], _ = json.Marshal(meta)
	out, err := json.Marshal(m)
	if err != nil {
		return body
	}
	return out
}
