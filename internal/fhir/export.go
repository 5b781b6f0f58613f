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

	"smartgate/internal/fhir/index"
	"smartgate/internal/fhir/spec"
	"smartgate/internal/problem"
	"smartgate/internal/scope"
	"smartgate/internal/store"
	"smartgate/internal/token"
)

// Bulk Data Access 2.0 (https://hl7.org/fhir/uv/bulkdata/): kick-off at
// /fhir/$export, /fhir/Patient/$export and /fhir/Group/{id}/$export; the
// job's status at /fhir/$export-status/{job}; its NDJSON files at
// /fhir/$export-file/{job}/{seq}. Jobs run in the background on any node
// (exporter.go) and keep their output in the database.

// ExportOptions configure Bulk Data export.
type ExportOptions struct {
	Retention       time.Duration // how long a finished job's files are kept
	MaxFileLines    int           // resources per NDJSON file before a new file starts
	MaxActivePerApp int           // jobs one client may have accepted or running
}

// exportParams are a job's parameters as stored (store.ExportJob.Params).
type exportParams struct {
	Kind        string              `json:"kind"` // system, patient, group
	Group       string              `json:"group,omitempty"`
	Types       []string            `json:"types"`
	Since       string              `json:"since,omitempty"` // a FHIR instant
	TypeFilters map[string][]string `json:"typeFilters,omitempty"`
	// Scope is the token's system/ scopes at kick-off: the job reads
	// what they allow, and nothing more.
	Scope string `json:"scope"`
}

// exportFormats are the _outputFormat values accepted (Bulk Data 2.0).
var exportFormats = []string{"application/fhir+ndjson", "application/ndjson", "ndjson"}

// exportParamsKnown are the kick-off parameters smartgate honours; the
// others of the specification are refused unless handling=lenient.
var exportParamsKnown = map[string]bool{"_outputFormat": true, "_since": true, "_type": true, "_typeFilter": true}

func (a *API) exportsOn() error {
	if a.exports == nil {
		return problem.New(problem.NotFound, "Bulk Data export is not enabled on this server")
	}
	return nil
}

// exportCaller authenticates a Bulk Data request: a backend-services token
// (client_credentials, system/ scopes).
func (a *API) exportCaller(r *http.Request) (*caller, error) {
	c, err := a.authenticate(r)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(c.scopes, func(s scope.Scope) bool { return s.IsResource() && s.Context == scope.ContextSystem }) {
		return nil, insufficient("system/*.rs", "Bulk Data export needs a SMART Backend Services token with system/ scopes (e.g. system/*.rs), and this token has %s", orNone(c.claims.Scope))
	}
	return c, nil
}

// systemOnly is the caller limited to its system/ scopes: an export reads
// with those alone.
func systemOnly(c *caller) *caller {
	out := &caller{claims: c.claims}
	for _, s := range c.scopes {
		if s.IsResource() && s.Context == scope.ContextSystem {
			out.scopes = append(out.scopes, s)
		}
	}
	return out
}

// exportKickoff is GET (or POST) .../$export: it validates the request,
// stores an accepted job and answers 202 with Content-Location.
func (a *API) exportKickoff(w http.ResponseWriter, r *http.Request, kind, group string) error {
	if err := a.exportsOn(); err != nil {
		return err
	}
	c, err := a.exportCaller(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	prefer := strings.ToLower(r.Header.Get("Prefer"))
	if !strings.Contains(prefer, "respond-async") {
		return problem.New(problem.InvalidRequest, "a Bulk Data kick-off needs the header Prefer: respond-async (the export runs in the background; poll the Content-Location of the 202 answer)")
	}
	lenient := strings.Contains(prefer, "handling=lenient")
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		return problem.New(problem.InvalidRequest, "send the kick-off as GET with query parameters; POST with a Parameters resource is not supported here")
	}
	for k := range q {
		if !exportParamsKnown[k] && !lenient {
			return problem.New(problem.InvalidRequest, "parameter %s is not supported by this server's export; leave it out, or send Prefer: handling=lenient to have it ignored", clip(k))
		}
	}
	for k, v := range q {
		if exportParamsKnown[k] && len(v) > 1 && k != "_typeFilter" {
			return problem.New(problem.InvalidRequest, "parameter %s appears %d times; send it once (lists are comma-separated)", k, len(v))
		}
	}
	if f := q.Get("_outputFormat"); f != "" && !slices.Contains(exportFormats, f) {
		return problem.New(problem.InvalidRequest, "_outputFormat %q is not supported; use application/fhir+ndjson (or application/ndjson, ndjson)", clip(f))
	}
	p := exportParams{Kind: kind, Group: group}
	if s := q.Get("_since"); s != "" {
		t, err := parseInstant(s)
		if err != nil {
			return problem.New(problem.InvalidRequest, "_since %q is not a FHIR instant such as 2026-01-31T00:00:00Z (a date and time with seconds and a time zone)", clip(s))
		}
		p.Since = t.UTC().Format(time.RFC3339Nano)
	}

	// The types: all this kind of export covers, or those of _type.
	all := exportableTypes(kind)
	sc := systemOnly(c)
	if t := q.Get("_type"); t != "" {
		for _, typ := range strings.Split(t, ",") {
			typ = strings.TrimSpace(typ)
			if !spec.Supported(typ) {
				return problem.New(problem.InvalidRequest, "_type names %q, which is not a resource type this server serves", clip(typ))
			}
			if !slices.Contains(all, typ) {
				return problem.New(problem.InvalidRequest, "_type names %s, which holds no patient data and so is not part of a %s-level export; use the system-level /$export for it", typ, kind)
			}
			if _, err := a.authorize(ctx, sc, typ, scope.PermS, nil); err != nil {
				return err
			}
			if !slices.Contains(p.Types, typ) {
				p.Types = append(p.Types, typ)
			}
		}
	} else {
		for _, typ := range all {
			if _, err := a.authorize(ctx, sc, typ, scope.PermS, nil); err == nil {
				p.Types = append(p.Types, typ)
			}
		}
		if len(p.Types) == 0 {
			return insufficient("system/*.rs", "the token's scopes (%s) allow reading none of the types this export covers", orNone(c.claims.Scope))
		}
	}
	for _, f := range q["_typeFilter"] {
		for _, one := range splitTypeFilters(f) {
			typ, query, ok := strings.Cut(one, "?")
			if !ok || !spec.Supported(typ) {
				return problem.New(problem.InvalidRequest, "_typeFilter %q must be a resource type, ?, and FHIR search parameters, e.g. Observation?category=laboratory", clip(one))
			}
			if !slices.Contains(p.Types, typ) {
				return problem.New(problem.InvalidRequest, "_typeFilter %q filters %s, which the export does not include (see _type)", clip(one), typ)
			}
			vals, err := url.ParseQuery(query)
			if err != nil {
				return problem.New(problem.InvalidRequest, "_typeFilter %q has a malformed query", clip(one))
			}
			if _, err := a.exportFilter(typ, vals); err != nil {
				return err
			}
			if p.TypeFilters == nil {
				p.TypeFilters = map[string][]string{}
			}
			p.TypeFilters[typ] = append(p.TypeFilters[typ], query)
		}
	}
	if kind == "group" {
		if _, err := a.authorize(ctx, sc, "Group", scope.PermR, nil); err != nil {
			return err
		}
		if _, err := a.store.ReadResource(ctx, "Group", group, nil); err != nil {
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
				return problem.New(problem.ResourceNotFound, "Group/%s does not exist", clip(group))
			}
			return problem.Internal(err)
		}
	}
	var scopes []string
	for _, s := range sc.scopes {
		scopes = append(scopes, s.Raw)
	}
	p.Scope = strings.Join(scopes, " ")
	if n := a.exportOpts.MaxActivePerApp; n > 0 {
		active, err := a.exports.CountActiveExports(ctx, c.claims.ClientID)
		if err != nil {
			return problem.Internal(err)
		}
		if active >= n {
			return problem.New(problem.RateLimited, "client %s already has %d exports accepted or running (at most %d); wait for one to finish or cancel one with DELETE on its status URL", c.claims.ClientID, active, n).
				WithHeader("Retry-After", "30")
		}
	}
	params, err := json.Marshal(p)
	if err != nil {
		return problem.Internal(err)
	}
	now := time.Now().UTC()
	job := store.ExportJob{ID: token.NewID(), ClientID: c.claims.ClientID, Status: store.ExportAccepted, Request: a.requestURL(r), Params: params,
		TransactionTime: now, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(a.exportOpts.Retention)}
	if err := a.exports.CreateExportJob(ctx, job); err != nil {
		return problem.Internal(err)
	}
	a.record(ctx, c, "fhir.export.kickoff", "success", auditDetail("job", job.ID, "kind", kind, "types", strings.Join(p.Types, ",")))
	select {
	case a.exportWake <- struct{}{}:
	default: // a wake-up is already pending
	}
	w.Header().Set("Content-Location", a.base+"/$export-status/"+job.ID)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// requestURL is the kick-off URL as the client sent it, on this base.
func (a *API) requestURL(r *http.Request) string {
	u := a.base + strings.TrimPrefix(r.URL.Path, "/fhir")
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	return u
}

// splitTypeFilters splits one _typeFilter value at the commas that start a
// new Type?query (a comma inside a query belongs to an OR list).
func splitTypeFilters(v string) []string {
	var out []string
	start := 0
	for i := 0; i < len(v); i++ {
		if v[i] != ',' {
			continue
		}
		rest := v[i+1:]
		if j := strings.IndexByte(rest, '?'); j > 0 && spec.Supported(rest[:j]) {
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// exportFilter compiles one _typeFilter query to a condition; parameters
// the server cannot evaluate are errors (a filter must never silently
// export more than was asked).
func (a *API) exportFilter(typ string, q url.Values) (store.Cond, error) {
	for k := range q {
		if strings.HasPrefix(k, "_") && k != "_id" && k != "_lastUpdated" {
			return nil, problem.New(problem.InvalidRequest, "_typeFilter for %s uses %s, which a filter cannot use; use search parameters of %s", typ, clip(k), typ)
		}
	}
	s, err := a.parseSearch(typ, q, true)
	if err != nil {
		return nil, err
	}
	return s.where, nil
}

// exportableTypes are the types an export of this kind covers: every
// served type for a system export; the patient-data types (Patient and
// the types in the patient compartment) for Patient and Group exports.
func exportableTypes(kind string) []string {
	var out []string
	for _, t := range spec.Types() {
		if kind != "system" && patientFree[t] {
			continue
		}
		out = append(out, t)
	}
	return out
}

func parseInstant(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, s)
}

// exportJob loads a job for its owner: another client's job is 404, as
// an unknown one (Bulk Data: jobs belong to the client that started them).
func (a *API) exportJob(ctx context.Context, c *caller, id string) (store.ExportJob, error) {
	notFound := problem.New(problem.ResourceNotFound, "there is no export job %s for this client: it never existed, was deleted, expired, or belongs to another client", clip(id))
	if len(id) > 64 {
		return store.ExportJob{}, notFound
	}
	j, err := a.exports.GetExportJob(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && j.ClientID != c.claims.ClientID) {
		return store.ExportJob{}, notFound
	}
	if err != nil {
		return store.ExportJob{}, problem.Internal(err)
	}
	return j, nil
}

// exportManifest is the completed job's answer (Bulk Data 2.0 §Response -
// Complete Status).
type exportManifest struct {
	TransactionTime     string           `json:"transactionTime"`
	Request             string           `json:"request"`
	RequiresAccessToken bool             `json:"requiresAccessToken"`
	Output              []manifestOutput `json:"output"`
	Error               []manifestOutput `json:"error"`
}

type manifestOutput struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count int64  `json:"count,omitempty"`
}

// exportStatus is GET|DELETE /fhir/$export-status/{job}.
func (a *API) exportStatus(w http.ResponseWriter, r *http.Request, id string) error {
	if err := a.exportsOn(); err != nil {
		return err
	}
	c, err := a.authenticate(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	j, err := a.exportJob(ctx, c, id)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if r.Method == http.MethodDelete {
		if err := a.exports.DeleteExportJob(ctx, j.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return problem.Internal(err)
		}
		a.record(ctx, c, "fhir.export.delete", "success", auditDetail("job", j.ID))
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	switch j.Status {
	case store.ExportAccepted, store.ExportRunning:
		progress := j.Progress
		if progress == "" {
			progress = "waiting to start"
			if j.Status == store.ExportRunning {
				progress = "starting"
			}
		}
		h.Set("X-Progress", headerValue(progress))
		h.Set("Retry-After", "2")
		w.WriteHeader(http.StatusAccepted)
		return nil
	case store.ExportFailed:
		return problem.New(problem.ExportFailed, "the export failed: %s", j.Error)
	}
	files, err := a.exports.ListExportFiles(ctx, j.ID)
	if err != nil {
		return problem.Internal(err)
	}
	m := exportManifest{TransactionTime: j.TransactionTime.UTC().Format(time.RFC3339Nano), Request: j.Request, RequiresAccessToken: true,
		Output: []manifestOutput{}, Error: []manifestOutput{}}
	for _, f := range files {
		m.Output = append(m.Output, manifestOutput{Type: f.Type, URL: a.base + "/$export-file/" + j.ID + "/" + strconv.Itoa(f.Seq) + ".ndjson", Count: f.Count})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the request URL keeps its &
	if err := enc.Encode(m); err != nil {
		return problem.Internal(err)
	}
	b := buf.Bytes()
	h.Set("Content-Type", "application/json")
	h.Set("Expires", j.ExpiresAt.UTC().Format(http.TimeFormat))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return nil
}

// headerValue keeps a header value to printable ASCII.
func headerValue(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, s)
}

// exportFile is GET /fhir/$export-file/{job}/{seq}.ndjson: the file,
// streamed chunk by chunk.
func (a *API) exportFile(w http.ResponseWriter, r *http.Request, id, name string) error {
	if err := a.exportsOn(); err != nil {
		return err
	}
	c, err := a.authenticate(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	j, err := a.exportJob(ctx, c, id)
	if err != nil {
		return err
	}
	seq, err := strconv.Atoi(strings.TrimSuffix(name, ".ndjson"))
	missing := problem.New(problem.ResourceNotFound, "export %s has no file %q; the manifest lists its files", j.ID, clip(name))
	if err != nil || seq < 1 || j.Status != store.ExportCompleted {
		return missing
	}
	started := false
	err = a.exports.ReadExportFile(ctx, j.ID, seq, func(chunk []byte) error {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/fhir+ndjson")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
		}
		_, err := w.Write(chunk)
		return err
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return missing
	case err != nil && !started:
		return problem.Internal(err)
	case err != nil:
		return nil // the client went away, or the connection failed mid-file
	}
	if !started {
		w.Header().Set("Content-Type", "application/fhir+ndjson")
		w.WriteHeader(http.StatusOK)
	}
	a.record(ctx, c, "fhir.export.download", "success", auditDetail("job", j.ID, "file", strconv.Itoa(seq)))
	return nil
}

// groupPatients are the patients a Group's member.entity references name.
func (a *API) groupPatients(ctx context.Context, group string) ([]string, error) {
	res, err := a.store.ReadResource(ctx, "Group", group, nil)
	if err != nil {
		return nil, err
	}
	var g struct {
		Member []struct {
			Entity struct {
				Reference string `json:"reference"`
			} `json:"entity"`
			Inactive bool `json:"inactive"`
		} `json:"member"`
	}
	if err := json.Unmarshal(res.Body, &g); err != nil {
		return nil, err
	}
	var out []string
	seen := map[string]bool{}
	for _, m := range g.Member {
		typ, id, _ := index.SplitReference(m.Entity.Reference, a.base)
		if typ == "Patient" && id != "" && !m.Inactive && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}
