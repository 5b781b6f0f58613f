package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"

	"smartgate/internal/fhir/spec"
	"smartgate/internal/problem"
	"smartgate/internal/scope"
	"smartgate/internal/store"
	"smartgate/internal/token"
)

// This file is the system-level entry point of `smartgate import` (package
// importer streams the files and calls it). Import acts with no token, as
// a system/*.cruds caller, through the same rules as the REST API: entries
// with a request are read by parseEntry, resources are validated and
// indexed by prepare, conditional creates, conditional updates and deletes
// run through apply, and a transaction Bundle runs through runTransaction
// with its urn:uuid reference rewriting and all-or-nothing commit. What
// import adds is one rule, applied inside the store transaction (importTx):
// an update whose content equals the current version's (meta.versionId and
// meta.lastUpdated aside) writes nothing, so re-running an import whose
// resources carry ids creates no new versions.

// importCaller is who import acts as: every interaction on every type, no
// patient context (SMART v2 system/*.cruds).
func importCaller() *caller {
	const s = "system/*.cruds"
	scopes, _ := scope.ParseList(s)
	return &caller{claims: &token.Claims{Subject: "smartgate-import", ClientID: "smartgate-import", Scope: s}, scopes: scopes}
}

// ImportOutcome is what importing one entry did.
type ImportOutcome string

const (
	ImportCreated   ImportOutcome = "created"
	ImportUpdated   ImportOutcome = "updated"
	ImportUnchanged ImportOutcome = "unchanged" // same content as stored: nothing written
	ImportDeleted   ImportOutcome = "deleted"
	ImportRead      ImportOutcome = "read" // a GET entry of a transaction
)

// ImportEntry is one resource to import: an NDJSON line or a collection
// Bundle's entry (Request nil), or a batch Bundle's entry.
type ImportEntry struct {
	FullURL  string
	Resource []byte
	// Request is the entry's request (Bundle.entry.request); nil for a
	// bare resource, which is an update-as-create of its id (PUT Type/id)
	// when it has one, else a create with a new id (POST Type).
	Request *ImportRequest
}

// ImportRequest is Bundle.entry.request.
type ImportRequest struct {
	Method, URL, IfNoneExist, IfMatch string
}

// ImportOp is an entry read and checked, and for a plain create or update
// also validated and indexed (outside any transaction, so that a batch of
// them can be prepared in parallel and written in one store transaction).
type ImportOp struct {
	op       entryOp
	prepared bool // body and ix hold the resource to store
	ix       store.Index
	metaAt   int // body is a store.MetaTemplate with lastUpdated here
	// Type and ID name the resource (ID is empty for a conditional create
	// until it is written).
	Type, ID string
	// NewID reports that the entry had no id and import chose one:
	// importing it again creates another resource.
	NewID bool
}

// ImportResult is what one written entry did.
type ImportResult struct {
	Outcome  ImportOutcome
	Type, ID string
	Version  int64
	// NewID: the entry was created with an id import chose (it had none,
	// or was a POST): importing it again creates another resource.
	NewID bool
}

// PrepareImport reads entry i of an import and, for a plain create or
// update, validates and indexes its resource. The error is the entry's
// own, as the REST API words it (a problem.Error).
func (a *API) PrepareImport(i int, e ImportEntry) (*ImportOp, error) {
	var op entryOp
	if e.Request != nil {
		var err error
		op, err = a.parseEntry(i, e.FullURL, e.Resource, &entryRequest{Method: e.Request.Method, URL: e.Request.URL, IfNoneExist: e.Request.IfNoneExist, IfMatch: e.Request.IfMatch})
		if err != nil {
			return nil, err
		}
		if op.method == "GET" {
			return nil, problem.New(problem.InvalidRequest, "entry %d is a GET (a read); import only writes, so it was skipped", i)
		}
	} else {
		typ, id, err := resourceHead(e.Resource)
		if err != nil {
			return nil, err
		}
		op = entryOp{index: i, method: "PUT", typ: typ, id: id, body: e.Resource, fullURL: e.FullURL}
		if id == "" {
			op.method = "POST"
		}
	}
	iop := &ImportOp{op: op, Type: op.typ, ID: op.id}
	switch {
	case op.method == "POST" && op.ifNoneExist == "":
		iop.ID, iop.NewID = newID(), true
	case op.method == "PUT" && op.ifMatch == "" && bodyID(op.body) == op.id:
	default:
		// Conditional creates, If-Match updates, updates whose body id
		// differs (update refuses them) and deletes run through apply
		// inside the transaction.
		return iop, nil
	}
	body, metaAt, ix, err := a.prepareNew(iop.Type, iop.ID, op.body)
	if err != nil {
		return nil, err
	}
	iop.op.body, iop.ix, iop.metaAt, iop.prepared = body, ix, metaAt, true
	return iop, nil
}

// resourceHead returns the resourceType and id of a bare resource.
func resourceHead(body []byte) (typ, id string, err error) {
	var h struct {
		ResourceType string  `json:"resourceType"`
		ID           *string `json:"id"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return "", "", problem.Wrap(problem.ResourceInvalid, err, "this is not a FHIR resource: a JSON object with a resourceType is expected")
	}
	if h.ResourceType == "" {
		return "", "", problem.New(problem.ResourceInvalid, "this JSON object has no resourceType, so it is not a FHIR resource")
	}
	if !spec.Supported(h.ResourceType) {
		return "", "", problem.New(problem.UnsupportedResourceType, "%q is not a resource type this server serves", clip(h.ResourceType))
	}
	if h.ID != nil {
		if !validID(*h.ID) {
			return "", "", problem.New(problem.ResourceInvalid, "the %s's id %q is not a FHIR id (1 to 64 of A-Z a-z 0-9 - .)", h.ResourceType, clip(*h.ID))
		}
		id = *h.ID
	}
	return h.ResourceType, id, nil
}

// bodyID is the id in a resource body ("" when it has none or is not JSON).
func bodyID(body []byte) string {
	var h struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &h)
	return h.ID
}

// WriteImport writes prepared entries in one store transaction: all of
// them, or (on any error) none. Callers that want each entry on its own
// retry them one at a time.
//
// Plain creates of ids never written (most of a first import) go to the
// store's bulk create (PutNew), gathered until an entry that needs more
// (an update of a stored resource, a conditional create, a delete) and
// written before it, so that every entry sees the ones before it.
func (a *API) WriteImport(ctx context.Context, ops []*ImportOp) ([]ImportResult, error) {
	out := make([]ImportResult, len(ops))
	c := importCaller()
	err := a.store.WriteFHIR(ctx, func(tx store.FHIRTx) error {
		it := &importTx{FHIRTx: tx}
		fresh, err := freshCreates(ctx, tx, ops)
		if err != nil {
			return err
		}
		if err := it.prefetch(ctx, ops, fresh); err != nil {
			return err
		}
		var bulk []store.Write
		flush := func() error {
			if len(bulk) == 0 {
				return nil
			}
			err := tx.PutNew(ctx, bulk)
			if err != nil && len(bulk) == 1 {
				err = a.writeError(ctx, bulk[0].Type, bulk[0].ID, access{}, err)
			}
			bulk = bulk[:0]
			return err
		}
		for i, iop := range ops {
			if fresh[i] {
				w := store.Write{Type: iop.Type, ID: iop.ID, Body: iop.op.body, Index: iop.ix, MetaAt: iop.metaAt}
				if iop.op.method == "PUT" {
					w.Method = "update" // as the REST update-as-create records it
				}
				bulk = append(bulk, w)
				out[i] = ImportResult{Outcome: ImportCreated, Type: iop.Type, ID: iop.ID, Version: 1, NewID: iop.NewID}
				continue
			}
			if err := flush(); err != nil {
				return err
			}
			r, err := a.writeOne(ctx, it, c, iop)
			if err != nil {
				return err
			}
			out[i] = r
		}
		return flush()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// freshCreates says which of ops create a resource whose id was never
// written (not current, not deleted) and which no other entry of ops
// names: those PutNew may write.
func freshCreates(ctx context.Context, tx store.FHIRTx, ops []*ImportOp) ([]bool, error) {
	fresh := make([]bool, len(ops))
	seen := map[string]int{}
	byType := map[string][]string{}
	for _, iop := range ops {
		k := iop.Type + "/" + iop.ID
		seen[k]++
		if iop.prepared && seen[k] == 1 {
			byType[iop.Type] = append(byType[iop.Type], iop.ID)
		}
	}
	written, err := writtenOf(ctx, tx, byType)
	if err != nil {
		return nil, err
	}
	for i, iop := range ops {
		k := iop.Type + "/" + iop.ID
		fresh[i] = iop.prepared && iop.ID != "" && seen[k] == 1 && !written[k]
	}
	return fresh, nil
}

func (a *API) writeOne(ctx context.Context, tx *importTx, c *caller, iop *ImportOp) (ImportResult, error) {
	tx.unchanged, tx.existed = false, false
	if iop.prepared {
		w := store.Write{Type: iop.Type, ID: iop.ID, Body: iop.op.body, Index: iop.ix}
		if iop.op.method == "PUT" {
			w.Method = "update" // as the REST update-as-create records it
		}
		res, err := tx.Put(ctx, w)
		if err != nil {
			return ImportResult{}, a.writeError(ctx, iop.Type, iop.ID, access{}, err)
		}
		return ImportResult{Outcome: tx.outcome(iop.op.method, 0), Type: iop.Type, ID: iop.ID, Version: res.Version, NewID: iop.NewID}, nil
	}
	out, err := a.apply(ctx, tx, c, iop.op)
	if err != nil {
		return ImportResult{}, err
	}
	return ImportResult{Outcome: tx.outcome(iop.op.method, out.status), Type: iop.Type, ID: out.res.ID, Version: out.res.Version}, nil
}

// ImportTransaction applies a transaction Bundle (FHIR R4 §3.1.0.11.2) as
// the REST API does, with urn:uuid references resolved, but as the system
// and with import's unchanged rule. It returns one result per entry, or
// the error of the entry that failed (its index, -1 when no single entry
// did) and nothing was written.
func (a *API) ImportTransaction(ctx context.Context, body []byte) ([]ImportResult, int, error) {
	typ, ops, err := a.parseBundle(body)
	if err != nil {
		return nil, -1, err
	}
	if typ != "transaction" {
		return nil, -1, problem.New(problem.InvalidRequest, "ImportTransaction takes a Bundle of type transaction, not %q", typ)
	}
	if i, err := firstEntryError(ops); err != nil {
		return nil, i, err
	}
	var it *importTx
	results, failed, err := a.runTransaction(ctx, importCaller(), ops, func(tx store.FHIRTx) store.FHIRTx {
		it = &importTx{FHIRTx: tx, byKey: map[string]bool{}}
		return it
	})
	if err != nil {
		return nil, failed, err
	}
	out := make([]ImportResult, len(ops))
	for i, r := range results {
		op := ops[i]
		o := ImportCreated
		switch {
		case op.method == "GET":
			o = ImportRead
		case op.method == "DELETE" && it.byKey[op.typ+"/"+op.id]:
			o = ImportUnchanged
		case op.method == "DELETE":
			o = ImportDeleted
		case r.status == http.StatusOK && op.method == "POST":
			o = ImportUnchanged // a conditional create that matched
		case r.status == http.StatusOK && it.byKey[r.res.Type+"/"+r.res.ID]:
			o = ImportUnchanged
		case r.status == http.StatusOK:
			o = ImportUpdated
		}
		out[i] = ImportResult{Outcome: o, Type: op.typ, ID: r.res.ID, Version: r.res.Version, NewID: o == ImportCreated && op.method == "POST" && op.ifNoneExist == ""}
		if out[i].ID == "" {
			out[i].ID = op.id
		}
	}
	return out, -1, nil
}

// importTx is a transaction's store view with import's unchanged rule: an
// update (Method "update", as update and import's PUT make) whose content
// equals the current version's writes nothing and returns the current
// version; a delete of a deleted resource is unchanged too.
type importTx struct {
	store.FHIRTx
	unchanged bool // the last Put wrote nothing
	existed   bool // the last Put's resource existed (not deleted) before it
	// byKey, when not nil, records per Type/id whether its last Put wrote
	// nothing (a transaction's results are read after it ends).
	byKey map[string]bool
	// current, when not nil, holds the current version of every resource
	// the updates of a chunk name (absent: never written, or deleted),
	// read in one search per type instead of one read per update, and
	// kept up to date by Put.
	current map[string]store.Resource
}

// prefetch reads the current versions of the resources ops update (but
// not of fresh creates, whose ids were never written).
func (t *importTx) prefetch(ctx context.Context, ops []*ImportOp, fresh []bool) error {
	ids := map[string][]string{}
	for i, iop := range ops {
		// A fresh create has no stored version to read.
		if iop.prepared && iop.op.method == "PUT" && !fresh[i] {
			ids[iop.Type] = append(ids[iop.Type], iop.ID)
		}
	}
	current, err := currentVersions(ctx, t.FHIRTx, ids)
	if err != nil {
		return err
	}
	t.current = current
	return nil
}

func (t *importTx) currentOf(ctx context.Context, typ, id string) (store.Resource, error) {
	if t.current == nil {
		return t.FHIRTx.Current(ctx, typ, id)
	}
	if r, ok := t.current[typ+"/"+id]; ok {
		return r, nil
	}
	return store.Resource{}, store.ErrNotFound
}

func (t *importTx) Put(ctx context.Context, w store.Write) (store.Resource, error) {
	t.unchanged, t.existed = false, false
	if w.Method == "update" && !w.Delete {
		cur, err := t.currentOf(ctx, w.Type, w.ID)
		switch {
		case err == nil:
			t.existed = true
			if w.IfMatch == 0 || w.IfMatch == cur.Version {
				same, err := sameContent(cur.Body, w.Body)
				if err != nil {
					return store.Resource{}, err
				}
				if same {
					t.mark(w, true)
					return cur, nil
				}
			}
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrGone):
		default:
			return store.Resource{}, err
		}
	}
	res, err := t.FHIRTx.Put(ctx, w)
	if err != nil {
		return res, err
	}
	if t.current != nil {
		if w.Delete {
			delete(t.current, w.Type+"/"+w.ID)
		} else {
			t.current[w.Type+"/"+w.ID] = res
		}
	}
	t.mark(w, w.Delete && res.Version == 0)
	return res, nil
}

func (t *importTx) mark(w store.Write, unchanged bool) {
	t.unchanged = unchanged
	if t.byKey != nil {
		t.byKey[w.Type+"/"+w.ID] = unchanged
	}
}

// outcome is what the last write did, from the entry's method and (for
// entries run through apply) the status it answered.
func (t *importTx) outcome(method string, status int) ImportOutcome {
	switch {
	case t.unchanged:
		return ImportUnchanged
	case method == "DELETE":
		return ImportDeleted
	case method == "POST" && status == http.StatusOK:
		return ImportUnchanged // a conditional create that matched
	case method == "POST":
		return ImportCreated
	case status == http.StatusCreated:
		return ImportCreated
	case status == 0 && !t.existed:
		return ImportCreated // an update that created (or revived) the resource
	}
	return ImportUpdated
}

// sameContent reports whether two versions of a resource hold the same
// content, meta.versionId and meta.lastUpdated aside (FHIR R4 §2.38
// Resource.meta: both are set by the server on every write).
func sameContent(stored, next []byte) (bool, error) {
	a, err := contentOf(stored)
	if err != nil {
		return false, err
	}
	b, err := contentOf(next)
	if err != nil {
		return false, err
	}
	return reflect.DeepEqual(a, b), nil
}

func contentOf(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if meta, ok := m["meta"].(map[string]any); ok {
		delete(meta, "versionId")
		delete(meta, "lastUpdated")
		if len(meta) == 0 {
			delete(m, "meta")
		}
	}
	return m, nil
}
