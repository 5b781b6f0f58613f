package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"smartgate/internal/fhir/spec"
	"smartgate/internal/problem"
	"smartgate/internal/requestid"
	"smartgate/internal/store"
)

type bundleIn struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  *entryRequest   `json:"request"`
	} `json:"entry"`
}

// entryRequest is Bundle.entry.request.
type entryRequest struct {
	Method      string `json:"method"`
	URL         string `json:"url"`
	IfNoneExist string `json:"ifNoneExist"`
	IfMatch     string `json:"ifMatch"`
}

// MaxBundleEntries bounds one batch or transaction (the REST API's and
// smartgate import's transactions alike).
const MaxBundleEntries = 1000

// entryOp is one parsed Bundle entry.
type entryOp struct {
	index       int
	method      string
	typ, id     string
	query       url.Values // GET search
	body        []byte
	fullURL     string
	ifNoneExist string
	ifMatch     string
	err         error // the entry could not be read (a batch answers it alone)
}

// bundle serves POST /fhir: a batch or a transaction (FHIR R4 §3.1.0.11).
func (a *API) bundle(w http.ResponseWriter, r *http.Request, c *caller) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	typ, ops, err := a.parseBundle(body)
	if err != nil {
		return err
	}
	if typ == "transaction" {
		if _, err := firstEntryError(ops); err != nil {
			return err
		}
		return a.transaction(w, r, c, ops)
	}
	return a.batch(w, r, c, ops)
}

// parseBundle reads a batch or transaction Bundle into its entries; an
// entry that cannot be read carries its error (a batch answers it alone,
// a transaction fails: firstEntryError).
func (a *API) parseBundle(body []byte) (string, []entryOp, error) {
	var in bundleIn
	if err := json.Unmarshal(body, &in); err != nil {
		return "", nil, problem.Wrap(problem.ResourceInvalid, err, "the body is not a FHIR Bundle: it must be a JSON object with resourceType Bundle, a type, and entry as an array of objects with request.method, request.url and, for POST and PUT, resource")
	}
	if len(in.Entry) > MaxBundleEntries {
		return "", nil, problem.New(problem.RequestTooLarge, "a batch or transaction Bundle may hold at most %d entries, this one has %d; split it", MaxBundleEntries, len(in.Entry))
	}
	if in.ResourceType != "Bundle" || (in.Type != "batch" && in.Type != "transaction") {
		return "", nil, problem.New(problem.InvalidRequest, "POST /fhir takes a Bundle of type batch or transaction (got resourceType %q, type %q)", clip(in.ResourceType), clip(in.Type))
	}
	ops := make([]entryOp, len(in.Entry))
	for i, e := range in.Entry {
		op, err := a.parseEntry(i, e.FullURL, e.Resource, e.Request)
		op.err = err
		ops[i] = op
	}
	return in.Type, ops, nil
}

// firstEntryError is the error of a transaction with an entry that could
// not be read, and that entry's index.
func firstEntryError(ops []entryOp) (int, error) {
	for i, op := range ops {
		if op.err != nil {
			return i, problem.New(problem.TransactionFailed, "%s; nothing was applied", problem.From(op.err).Description)
		}
	}
	return -1, nil
}

func (a *API) parseEntry(i int, fullURL string, resource json.RawMessage, req *entryRequest) (entryOp, error) {
	op := entryOp{index: i, fullURL: fullURL}
	if req == nil || req.Method == "" || req.URL == "" {
		return op, problem.New(problem.InvalidRequest, "entry %d has no request.method and request.url", i)
	}
	op.method, op.ifNoneExist, op.ifMatch = req.Method, req.IfNoneExist, req.IfMatch
	u := strings.TrimPrefix(req.URL, a.base+"/")
	path, rawQuery, hasQuery := strings.Cut(u, "?")
	parts := strings.Split(strings.Trim(path, "/"), "/")
	op.typ = parts[0]
	if !spec.Supported(op.typ) {
		return op, problem.New(problem.UnsupportedResourceType, "entry %d: %q is not a resource type this server serves", i, clip(op.typ))
	}
	if len(parts) > 1 {
		op.id = parts[1]
		if !validID(op.id) || len(parts) > 2 {
			return op, problem.New(problem.InvalidRequest, "entry %d: request.url %q must be Type or Type/id", i, clip(req.URL))
		}
	}
	if hasQuery {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return op, problem.New(problem.InvalidRequest, "entry %d: the query of request.url cannot be read", i)
		}
		op.query = q
	}
	switch op.method {
	case "GET":
	case "POST":
		if op.id != "" {
			return op, problem.New(problem.InvalidRequest, "entry %d: POST creates, so request.url is the type alone (%s), not %s/%s", i, op.typ, op.typ, op.id)
		}
	case "PUT", "DELETE":
		if op.id == "" {
			return op, problem.New(problem.InvalidRequest, "entry %d: %s needs request.url Type/id (conditional %s is not supported)", i, op.method, op.method)
		}
	default:
		return op, problem.New(problem.InvalidRequest, "entry %d: request.method %q is not supported; use GET, POST, PUT or DELETE", i, clip(op.method))
	}
	if op.method == "POST" || op.method == "PUT" {
		if len(resource) == 0 {
			return op, problem.New(problem.InvalidRequest, "entry %d: %s needs a resource", i, op.method)
		}
		op.body = resource
	}
	return op, nil
}

// transaction applies every entry or none.
func (a *API) transaction(w http.ResponseWriter, r *http.Request, c *caller, ops []entryOp) error {
	ctx := r.Context()
	results, _, err := a.runTransaction(ctx, c, ops, nil)
	if err := a.recordOutcome(ctx, c, "fhir.transaction", auditDetail("entries", strconv.Itoa(len(ops))), err); err != nil {
		return err
	}
	return a.writeResponseBundle(w, r, "transaction-response", ops, results, nil)
}

// runTransaction applies every entry of a transaction or none, and on
// failure also returns the index of the entry that failed (-1 when none
// did: the store failed). wrap, when not nil, decorates the transaction's
// store view (smartgate import's unchanged check, import.go).
func (a *API) runTransaction(ctx context.Context, c *caller, ops []entryOp, wrap func(store.FHIRTx) store.FHIRTx) ([]result, int, error) {
	// FHIR R4 §3.1.0.11.2: deletes, then creates, then updates, then reads.
	rank := map[string]int{"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3}
	order := make([]int, len(ops))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(x, y int) bool { return rank[ops[order[x]].method] < rank[ops[order[y]].method] })
	results := make([]result, len(ops))
	failed := -1
	fail := func(i int, err error) error {
		failed = i
		pe := problem.From(err)
		if pe.ID == problem.InternalError {
			return pe
		}
		// The entry's own error, with its id, status and headers (an
		// insufficient_scope challenge), says which entry and that
		// nothing was applied.
		e := *pe
		e.Description = fmt.Sprintf("entry %d (%s %s) failed, so nothing in the transaction was applied: %s", i, ops[i].method, ops[i].typ, pe.Description)
		return &e
	}
	err := a.store.WriteFHIR(ctx, func(tx store.FHIRTx) error {
		if wrap != nil {
			tx = wrap(tx)
		}
		// The ids of creates, and the references that name them by fullUrl
		// (urn:uuid:... or any other) rewritten to Type/id. A conditional
		// create that matches an existing resource is that resource.
		refs := map[string]string{}
		for i := range ops {
			op := &ops[i]
			switch op.method {
			case "POST":
				op.id = newID()
				if op.ifNoneExist != "" {
					found, n, err := a.conditional(ctx, tx, c, op.typ, op.ifNoneExist, "ifNoneExist")
					if err != nil {
						return fail(i, err)
					}
					if n == 1 {
						op.id = found.ID
					}
				}
				if op.fullURL != "" {
					refs[op.fullURL] = op.typ + "/" + op.id
				}
			case "PUT":
				if op.fullURL != "" && op.fullURL != a.fullURL(op.typ, op.id) {
					refs[op.fullURL] = op.typ + "/" + op.id
				}
			}
		}
		if len(refs) > 0 {
			for i := range ops {
				if ops[i].body != nil {
					b, err := rewriteRefs(ops[i].body, refs)
					if err != nil {
						return fail(i, problem.New(problem.ResourceInvalid, "the resource is not valid JSON"))
					}
					ops[i].body = b
				}
			}
		}
		for _, i := range order {
			op := ops[i]
			out, err := a.apply(ctx, tx, c, op)
			if err != nil {
				return fail(i, err)
			}
			results[i] = out
		}
		return nil
	})
	if err != nil {
		return nil, failed, err
	}
	return results, -1, nil
}

// batch applies each entry on its own; a failed entry carries its
// OperationOutcome and does not stop the others.
func (a *API) batch(w http.ResponseWriter, r *http.Request, c *caller, ops []entryOp) error {
	ctx := r.Context()
	results := make([]result, len(ops))
	errs := make([]error, len(ops))
	for i, op := range ops {
		if op.err != nil {
			errs[i] = op.err
			continue
		}
		if op.method == "GET" {
			results[i], errs[i] = a.apply(ctx, nil, c, op)
			continue
		}
		errs[i] = a.store.WriteFHIR(ctx, func(tx store.FHIRTx) error {
			var err error
			results[i], err = a.apply(ctx, tx, c, op)
			return err
		})
	}
	a.record(ctx, c, "fhir.batch", "success", auditDetail("entries", strconv.Itoa(len(ops))))
	return a.writeResponseBundle(w, r, "batch-response", ops, results, errs)
}

// apply runs one entry (tx is nil for reads in a batch).
func (a *API) apply(ctx context.Context, tx store.FHIRTx, c *caller, op entryOp) (result, error) {
	switch op.method {
	case "POST":
		return a.create(ctx, tx, c, op.typ, op.id, op.body, op.ifNoneExist)
	case "PUT":
		return a.update(ctx, tx, c, op.typ, op.id, op.body, op.ifMatch)
	case "DELETE":
		return a.delete(ctx, tx, c, op.typ, op.id)
	}
	var rd reader = a.store
	if tx != nil {
		rd = tx
	}
	if op.id != "" {
		return a.read(ctx, rd, c, op.typ, op.id)
	}
	body, err := a.searchRun(ctx, rd, c, op.typ, op.query, false)
	if err != nil {
		return result{}, err
	}
	return result{status: http.StatusOK, body: body}, nil
}

func (a *API) writeResponseBundle(w http.ResponseWriter, r *http.Request, typ string, ops []entryOp, results []result, errs []error) error {
	b := &bundleWriter{}
	b.start(typ)
	minimal := preferReturn(r) == "minimal"
	wr := &problem.Writer{BaseURL: a.issuer}
	rid := requestid.From(r.Context())
	for i, out := range results {
		if errs != nil && errs[i] != nil {
			pe := problem.From(errs[i])
			oo, _ := json.Marshal(wr.OperationOutcome(pe, rid))
			resp := fmt.Sprintf(`{"status":%q,"outcome":%s}`, strconv.Itoa(pe.HTTPStatus())+" "+http.StatusText(pe.HTTPStatus()), oo)
			b.entry("", nil, "", "", resp)
			continue
		}
		resp := map[string]string{"status": strconv.Itoa(out.status) + " " + http.StatusText(out.status)}
		if out.location != "" {
			resp["location"] = out.location
		}
		if out.res.Version > 0 {
			resp["etag"] = `W/"` + strconv.FormatInt(out.res.Version, 10) + `"`
			resp["lastModified"] = instant(out.res.LastUpdated)
		}
		rj, _ := json.Marshal(resp)
		full := ""
		if out.res.ID != "" && !out.res.Deleted {
			full = a.fullURL(out.res.Type, out.res.ID)
		}
		body := out.body
		if minimal && ops[i].method != "GET" {
			body = nil
		}
		b.entry(full, body, "", "", string(rj))
	}
	return writeJSON(w, r, http.StatusOK, b.finish())
}

// rewriteRefs replaces every Reference.reference equal to a key of refs
// (a fullUrl of the Bundle) with its value; other strings (an identifier
// that happens to hold the same urn:uuid) are left as they are.
func rewriteRefs(body []byte, refs map[string]string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	changed := false
	var walk func(x any) any
	walk = func(x any) any {
		switch t := x.(type) {
		case map[string]any:
			for k, val := range t {
				if ref, ok := val.(string); ok {
					if to, hit := refs[ref]; hit && k == "reference" {
						t[k] = to
						changed = true
					}
					continue
				}
				t[k] = walk(val)
			}
		case []any:
			for i, val := range t {
				t[i] = walk(val)
			}
		}
		return x
	}
	v = walk(v)
	if !changed {
		return body, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
