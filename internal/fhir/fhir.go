// Package fhir is smartgate's FHIR R4 (4.0.1) REST API over US Core 6.1.0
// data: read, vread, search, create, update, delete, history, batch and
// transaction, with SMART scope enforcement on every request in one place
// (authorize, in auth.go): every interaction is checked against the
// token's scopes, and every resource it reads or writes must satisfy the
// access condition those scopes give (the patient's compartment, the
// user's patients, a granular scope's query constraint).
package fhir

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"smartgate/internal/audit"
	"smartgate/internal/fhir/index"
	"smartgate/internal/fhir/spec"
	"smartgate/internal/problem"
	"smartgate/internal/store"
	"smartgate/internal/token"
)

// MaxBody is the largest request body the FHIR API reads (a transaction
// Bundle may be large; single resources are far smaller).
const MaxBody = 32 << 20

// Deps are what the API needs.
type Deps struct {
	Store  store.FHIR
	Tokens *token.Service
	Base   string // the FHIR base URL, e.g. https://ehr.example.org/fhir
	Issuer string
	Audit  *audit.Writer
	Log    *slog.Logger
	// Software names the server in the CapabilityStatement.
	Software, Version string
	// OAuthURIs are the SMART oauth-uris of the CapabilityStatement, as
	// (name, URL) pairs: token, authorize, register, introspect, revoke,
	// manage — only those that exist.
	OAuthURIs [][2]string
	// PractitionerAccess is config fhir.practitioner_access: "all" (the
	// default when empty) or "care-relationship".
	PractitionerAccess string
	// Exports stores Bulk Data export jobs; nil turns $export off.
	Exports    store.Exports
	ExportOpts ExportOptions
	// External verifies access tokens of trusted external issuers
	// (federation.issuers); nil accepts only smartgate's own tokens.
	External ExternalVerifier
}

// API serves /fhir.
type API struct {
	store  store.FHIR
	tokens *token.Service
	base   string
	issuer string
	audit  *audit.Writer
	log    *slog.Logger
	soft   string
	ver    string
	start  time.Time
	uris   [][2]string

	practitionerAccess string

	exports    store.Exports
	exportOpts ExportOptions
	exportWake chan struct{} // a new job is waiting (RunExporter listens)

	capMu   sync.Mutex
	capJSON []byte

	external ExternalVerifier // nil: only smartgate's own tokens
}

// New returns the API.
func New(d Deps) *API {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &API{store: d.Store, tokens: d.Tokens, base: strings.TrimRight(d.Base, "/"), issuer: d.Issuer,
		audit: d.Audit, log: d.Log, soft: d.Software, ver: d.Version, start: time.Now().UTC(), uris: d.OAuthURIs, practitionerAccess: d.PractitionerAccess,
		exports: d.Exports, exportOpts: d.ExportOpts, exportWake: make(chan struct{}, 1), external: d.External}
}

// Methods are the HTTP methods the FHIR API answers (others get 405).
var Methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete}

func (a *API) extract(typ string, body []byte) (store.Index, error) {
	return index.Extract(typ, body, a.base)
}

// IsRead reports whether r only reads: a GET (a read, a search, history,
// capabilities, an export's kick-off or status) or a POST to _search. A
// Bulk Data output file is not counted: it streams for as long as its
// client takes to read it.
func IsRead(r *http.Request) bool {
	rest := strings.TrimPrefix(r.URL.Path, "/fhir/")
	switch r.Method {
	case http.MethodGet:
		f, ok := strings.CutPrefix(rest, "$export-file/")
		return !ok || strings.Count(f, "/") != 1
	case http.MethodPost:
		return strings.HasSuffix(rest, "/_search")
	}
	return false
}

// ServeFHIR dispatches every request under /fhir.
func (a *API) ServeFHIR(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/fhir"), "/")
	var seg []string
	if rest != "" {
		seg = strings.Split(rest, "/")
	}
	// Bulk Data: its files are NDJSON, which the FHIR JSON negotiation
	// below would refuse.
	switch {
	case len(seg) == 2 && seg[0] == "$export-status":
		if r.Method != http.MethodGet && r.Method != http.MethodDelete {
			return methodNotAllowed(r, "GET, DELETE")
		}
		return a.exportStatus(w, r, seg[1])
	case len(seg) == 3 && seg[0] == "$export-file":
		if r.Method != http.MethodGet {
			return methodNotAllowed(r, "GET")
		}
		return a.exportFile(w, r, seg[1], seg[2])
	}
	if err := negotiate(r); err != nil {
		return err
	}
	if len(seg) == 1 && seg[0] == "$export" || len(seg) == 2 && seg[0] == "Patient" && seg[1] == "$export" || len(seg) == 3 && seg[0] == "Group" && seg[2] == "$export" {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			return methodNotAllowed(r, "GET")
		}
		switch len(seg) {
		case 1:
			return a.exportKickoff(w, r, "system", "")
		case 2:
			return a.exportKickoff(w, r, "patient", "")
		}
		if !validID(seg[1]) {
			return problem.New(problem.ResourceNotFound, "%q is not a FHIR id", clip(seg[1]))
		}
		return a.exportKickoff(w, r, "group", seg[1])
	}
	if len(seg) == 1 && seg[0] == "metadata" {
		if r.Method != http.MethodGet {
			return methodNotAllowed(r, "GET")
		}
		return a.metadata(w, r)
	}
	if len(seg) == 0 {
		if r.Method != http.MethodPost {
			return methodNotAllowed(r, "POST")
		}
		c, err := a.authenticate(r)
		if err != nil {
			return err
		}
		return a.bundle(w, r, c)
	}
	typ := seg[0]
	if !spec.Supported(typ) {
		return problem.New(problem.UnsupportedResourceType, "%q is not a resource type this server serves; /fhir/metadata lists them", clip(typ))
	}
	c, err := a.authenticate(r)
	if err != nil {
		return err
	}
	switch {
	case len(seg) == 1:
		switch r.Method {
		case http.MethodGet:
			return a.searchHTTP(w, r, c, typ, r.URL.Query())
		case http.MethodPost:
			return a.createHTTP(w, r, c, typ)
		}
		return methodNotAllowed(r, "GET, POST")
	case len(seg) == 2 && seg[1] == "_search":
		if r.Method != http.MethodPost {
			return methodNotAllowed(r, "POST")
		}
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
			return problem.New(problem.UnsupportedMediaType, "POST %s/_search takes the parameters as application/x-www-form-urlencoded, not %q", typ, clip(r.Header.Get("Content-Type")))
		}
		if err := r.ParseForm(); err != nil {
			return problem.New(problem.InvalidRequest, "the form body of _search could not be read: %s", clip(err.Error()))
		}
		return a.searchHTTP(w, r, c, typ, r.Form)
	case len(seg) == 2 && typ == "DocumentReference" && seg[1] == "$docref":
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			return methodNotAllowed(r, "GET, POST")
		}
		return a.docref(w, r, c)
	case len(seg) == 2 && seg[1] == "_history":
		if r.Method != http.MethodGet {
			return methodNotAllowed(r, "GET")
		}
		return a.historyHTTP(w, r, c, typ, "")
	case len(seg) == 2:
		id := seg[1]
		if !validID(id) {
			return problem.New(problem.ResourceNotFound, "%q is not a FHIR id (1 to 64 of A-Z a-z 0-9 - .)", clip(id))
		}
		switch r.Method {
		case http.MethodGet:
			return a.readHTTP(w, r, c, typ, id)
		case http.MethodPut:
			return a.updateHTTP(w, r, c, typ, id)
		case http.MethodDelete:
			return a.deleteHTTP(w, r, c, typ, id)
		}
		return methodNotAllowed(r, "GET, PUT, DELETE")
	case len(seg) == 3 && seg[2] == "_history" && validID(seg[1]):
		if r.Method != http.MethodGet {
			return methodNotAllowed(r, "GET")
		}
		return a.historyHTTP(w, r, c, typ, seg[1])
	case len(seg) == 4 && seg[2] == "_history" && validID(seg[1]):
		if r.Method != http.MethodGet {
			return methodNotAllowed(r, "GET")
		}
		v, err := strconv.ParseInt(seg[3], 10, 64)
		if err != nil || v < 1 {
			return problem.New(problem.ResourceNotFound, "%q is not a version id; versions are 1, 2, 3...", clip(seg[3]))
		}
		return a.vreadHTTP(w, r, c, typ, seg[1], v)
	}
	return problem.New(problem.NotFound, "nothing is served at %s; see /fhir/metadata for the interactions this server supports", clip(r.URL.Path))
}

func methodNotAllowed(r *http.Request, allow string) error {
	return problem.New(problem.MethodNotAllowed, "%s is not allowed on %s; use %s", clip(r.Method), clip(r.URL.Path), allow).WithHeader("Allow", allow)
}

// clip shortens client-supplied text quoted back in errors.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

func validID(id string) bool {
	if len(id) < 1 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// newID is a fresh server-assigned id: 32 hex digits (a valid FHIR id).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// negotiate refuses requests that want a format other than FHIR JSON.
func negotiate(r *http.Request) error {
	if f := r.URL.Query().Get("_format"); f != "" {
		switch f {
		case "json", "application/json", "application/fhir+json", "application/json+fhir":
		default:
			return problem.New(problem.NotAcceptable, "_format=%s is not available; this server speaks FHIR JSON (_format=json)", clip(f))
		}
		return nil
	}
	accept := r.Header.Get("Accept")
	if accept == "" {
		return nil
	}
	for _, part := range strings.Split(accept, ",") {
		mt, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
		switch mt {
		case "", "*/*", "application/*", "application/json", "application/fhir+json", "application/json+fhir", "text/*", "text/plain", "text/html":
			return nil
		}
		if !strings.Contains(mt, "xml") && !strings.HasPrefix(mt, "application/fhir") {
			// A Binary read may ask for its own content type.
			return nil
		}
	}
	return problem.New(problem.NotAcceptable, "Accept: %s asks only for formats this server does not produce; ask for application/fhir+json", clip(accept))
}

// readBody reads a FHIR JSON request body.
func readBody(r *http.Request) ([]byte, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/fhir+json", "application/json", "application/json+fhir":
	default:
		return nil, problem.New(problem.UnsupportedMediaType, "the body must be FHIR JSON with Content-Type: application/fhir+json, not %q", clip(r.Header.Get("Content-Type")))
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBody))
	if err != nil {
		return nil, problem.New(problem.RequestTooLarge, "the body could not be read or is larger than %d MiB", MaxBody>>20)
	}
	return body, nil
}

// contentType is the media type of FHIR responses: application/json when
// the client asked for exactly that, else application/fhir+json.
func contentType(r *http.Request) string {
	if r.Header.Get("Accept") == "application/json" || r.URL.Query().Get("_format") == "application/json" {
		return "application/json; charset=utf-8"
	}
	return "application/fhir+json; charset=utf-8"
}

// writeJSON writes a FHIR response body.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, body []byte) error {
	h := w.Header()
	h.Set("Content-Type", contentType(r))
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-store")
	}
	if r.URL.Query().Get("_pretty") == "true" {
		var buf bytes.Buffer
		if json.Indent(&buf, body, "", "  ") == nil {
			body = buf.Bytes()
		}
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}

// versionHeaders sets ETag and Last-Modified for one resource version.
func versionHeaders(h http.Header, res store.Resource) {
	h.Set("ETag", `W/"`+strconv.FormatInt(res.Version, 10)+`"`)
	h.Set("Last-Modified", res.LastUpdated.UTC().Format(http.TimeFormat))
}

func (a *API) record(ctx context.Context, c *caller, action, outcome, detail string) {
	if a.audit == nil {
		return
	}
	ev := audit.Event{Action: action, Outcome: outcome, Detail: detail}
	if c != nil {
		ev.Actor = "client:" + c.claims.ClientID
		if c.claims.Subject != "" && c.claims.Subject != c.claims.ClientID {
			ev.Actor = "user:" + c.claims.Subject
		}
		ev.ClientID, ev.Patient = c.claims.ClientID, c.claims.Patient
	}
	a.audit.Record(ctx, ev)
}

// recordOutcome records action as a failure when err is not nil and as a
// success otherwise, with the same detail, and returns err: the
// interactions whose refusals are audited as their successes are.
func (a *API) recordOutcome(ctx context.Context, c *caller, action, detail string, err error) error {
	outcome := "success"
	if err != nil {
		outcome = "failure"
	}
	a.record(ctx, c, action, outcome, detail)
	return err
}

func auditDetail(kv ...string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// SeedResource is one resource to load as given (its id kept).
type SeedResource struct {
	Type, ID string
	Body     []byte
}

// Seed validates, indexes and stores resources with their own ids, all in
// one transaction and with no access check: for dev mode's demo data and
// the command line. A resource that is not valid stops everything.
//
// With once, nothing is written when the first resource already exists (or
// existed): several nodes starting together on one PostgreSQL database
// seed once, serialised by a lock.
func (a *API) Seed(ctx context.Context, rs []SeedResource, once bool) error {
	return a.store.WriteFHIR(ctx, func(tx store.FHIRTx) error {
		if once && len(rs) > 0 {
			if err := tx.Lock(ctx, "seed"); err != nil {
				return err
			}
			switch _, err := tx.Current(ctx, rs[0].Type, rs[0].ID); {
			case err == nil, errors.Is(err, store.ErrGone):
				return nil // already seeded
			case !errors.Is(err, store.ErrNotFound):
				return err
			}
		}
		for _, r := range rs {
			body, ix, err := a.prepare(r.Type, r.ID, r.Body)
			if err != nil {
				return fmt.Errorf("%s/%s: %w", r.Type, r.ID, err)
			}
			if _, err := tx.Put(ctx, store.Write{Type: r.Type, ID: r.ID, Body: body, Index: ix}); err != nil {
				return fmt.Errorf("%s/%s: %w", r.Type, r.ID, err)
			}
		}
		return nil
	})
}

// Empty reports whether no FHIR resource was ever stored.
func (a *API) Empty(ctx context.Context) (bool, error) {
	h, _, err := a.store.History(ctx, store.HistoryQuery{Count: 1})
	return len(h) == 0, err
}
