package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"smartgate/internal/problem"
	"smartgate/internal/scope"
	"smartgate/internal/store"
	"smartgate/internal/token"
)

// The exporter runs Bulk Data jobs in the background. Every node runs one;
// a node claims one job at a time from the database with a lease that it
// renews while it works, so a job whose node dies is taken over by another
// node after the lease (and starts over). Memory stays bounded: resources
// are read a page at a time and written as chunks of exportChunkSize.

const (
	exportLease     = time.Minute
	exportRenew     = 15 * time.Second
	exportPage      = 1000
	exportChunkSize = 1 << 20
	// exportPatientBatch bounds the patients of one compartment condition
	// in a Group export.
	exportPatientBatch = 500
)

// RunExporter runs export jobs until ctx ends. node names this node in
// the jobs it claims.
func (a *API) RunExporter(ctx context.Context, node string) {
	if a.exports == nil {
		return
	}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			now := time.Now().UTC()
			j, err := a.exports.ClaimExportJob(ctx, node, now, now.Add(exportLease))
			if errors.Is(err, store.ErrNotFound) {
				break
			}
			if err != nil {
				if ctx.Err() == nil {
					a.log.Warn("claiming an export job failed", "error", err.Error())
				}
				break
			}
			a.runExport(ctx, node, j)
		}
		select {
		case <-ctx.Done():
			return
		case <-a.exportWake:
		case <-t.C:
		}
	}
}

// errJobGone stops a job that was deleted or taken over.
var errJobGone = errors.New("export job deleted or taken over")

// runExport runs one claimed job to completion or failure.
func (a *API) runExport(ctx context.Context, node string, j store.ExportJob) {
	x := &exportRun{a: a, node: node, job: j, lastRenew: time.Now()}
	err := x.run(ctx)
	switch {
	case err == nil:
		err = a.exports.UpdateExportJob(ctx, j.ID, node, func(sj *store.ExportJob) {
			sj.Status, sj.Progress, sj.UpdatedAt = store.ExportCompleted, "", time.Now().UTC()
			sj.ExpiresAt = time.Now().UTC().Add(a.exportOpts.Retention)
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			a.log.Warn("completing an export job failed", "job", j.ID, "error", err.Error())
		}
		a.log.Info("export job completed", "job", j.ID, "client_id", j.ClientID, "resources", x.total, "files", x.fileSeq)
	case errors.Is(err, errJobGone), errors.Is(err, store.ErrNotFound), ctx.Err() != nil:
		// Deleted by its client, taken over, or this node is stopping
		// (another node will take it over when the lease ends).
	default:
		msg := "the server failed while exporting; start the export again (the administrator finds details in the log under job " + j.ID + ")"
		if pe := (*problem.Error)(nil); errors.As(err, &pe) && pe.ID != problem.InternalError {
			msg = pe.Description
		}
		a.log.Error("export job failed", "job", j.ID, "error", err.Error())
		_ = a.exports.UpdateExportJob(ctx, j.ID, node, func(sj *store.ExportJob) {
			sj.Status, sj.Error, sj.Progress, sj.UpdatedAt = store.ExportFailed, msg, "", time.Now().UTC()
		})
	}
}

type exportRun struct {
	a         *API
	node      string
	job       store.ExportJob
	params    exportParams
	total     int64
	fileSeq   int
	lastRenew time.Time

	// the file being written
	fileType  string
	fileLines int64
	fileBytes int64
	chunkN    int
	buf       []byte
}

func (x *exportRun) run(ctx context.Context) error {
	if err := json.Unmarshal(x.job.Params, &x.params); err != nil {
		return fmt.Errorf("job parameters: %w", err)
	}
	scopes, _ := scope.ParseList(x.params.Scope)
	c := &caller{claims: &token.Claims{ClientID: x.job.ClientID, Subject: x.job.ClientID, Scope: x.params.Scope}, scopes: scopes}
	var patients []string
	if x.params.Kind == "group" {
		var err error
		if patients, err = x.a.groupPatients(ctx, x.params.Group); err != nil {
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
				return problem.New(problem.ResourceNotFound, "Group/%s was deleted before the export ran", x.params.Group)
			}
			return err
		}
	}
	for _, typ := range x.params.Types {
		ac, err := x.a.authorize(ctx, c, typ, scope.PermS, nil)
		if err != nil {
			continue // the client's registration lost the scope since kick-off
		}
		base := []store.Cond{ac.Cond}
		if x.params.Since != "" {
			since, err := x.a.exportFilter(typ, url.Values{"_lastUpdated": {"gt" + x.params.Since}})
			if err != nil {
				return err
			}
			base = append(base, since)
		}
		if fs := x.params.TypeFilters[typ]; len(fs) > 0 {
			var or store.Or
			for _, f := range fs {
				q, _ := url.ParseQuery(f)
				cond, err := x.a.exportFilter(typ, q)
				if err != nil {
					return err
				}
				or = append(or, cond)
			}
			base = append(base, or)
		}
		switch x.params.Kind {
		case "system", "patient":
			// A patient-level export covers every patient: the types are
			// limited to patient data, the patients are not.
			if err := x.exportType(ctx, typ, andConds(base...)); err != nil {
				return err
			}
		case "group":
			for i := 0; i < len(patients); i += exportPatientBatch {
				batch := patients[i:min(i+exportPatientBatch, len(patients))]
				var in store.Cond
				if typ == "Patient" {
					in = store.IDIn{IDs: batch}
				} else {
					in = compartmentCond(typ, batch)
				}
				if err := x.exportType(ctx, typ, andConds(append(base, in)...)); err != nil {
					return err
				}
			}
		}
		if err := x.closeFile(ctx); err != nil {
			return err
		}
	}
	return nil
}

// exportType writes every current resource of typ matching where, a page
// at a time (keyset paging, stable while data changes).
func (x *exportRun) exportType(ctx context.Context, typ string, where store.Cond) error {
	var after int64
	for {
		res, err := x.a.store.Search(ctx, store.Query{Type: typ, Where: where, Page: store.Page{Count: exportPage, After: after}})
		if err != nil {
			return err
		}
		for _, f := range res.Resources {
			if err := x.write(ctx, typ, f.Body); err != nil {
				return err
			}
			after = f.Key
		}
		if !res.More || len(res.Resources) == 0 {
			return nil
		}
		if time.Since(x.lastRenew) >= exportRenew {
			if err := x.renew(ctx); err != nil {
				return err
			}
		}
	}
}

// write appends one resource as an NDJSON line to the current file of
// typ, starting a new file for a new type or when the file is full.
func (x *exportRun) write(ctx context.Context, typ string, body []byte) error {
	if x.fileType != typ || (x.a.exportOpts.MaxFileLines > 0 && x.fileLines >= int64(x.a.exportOpts.MaxFileLines)) {
		if err := x.closeFile(ctx); err != nil {
			return err
		}
		x.fileSeq++
		x.fileType, x.fileLines, x.fileBytes, x.chunkN = typ, 0, 0, 0
	}
	x.buf = append(x.buf, body...)
	x.buf = append(x.buf, '\n')
	x.fileLines++
	x.total++
	x.fileBytes += int64(len(body) + 1)
	if len(x.buf) >= exportChunkSize {
		return x.flush(ctx)
	}
	return nil
}

// flush stores the buffered lines as the file's next chunk, and renews
// the lease with the progress now and then.
func (x *exportRun) flush(ctx context.Context) error {
	if len(x.buf) == 0 {
		return nil
	}
	if err := x.a.exports.PutExportChunk(ctx, x.job.ID, x.node, x.fileSeq, x.chunkN, x.buf); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errJobGone
		}
		return err
	}
	x.chunkN++
	x.buf = x.buf[:0]
	if time.Since(x.lastRenew) >= exportRenew {
		return x.renew(ctx)
	}
	return nil
}

func (x *exportRun) renew(ctx context.Context) error {
	x.lastRenew = time.Now()
	progress := fmt.Sprintf("%d resources exported (now %s)", x.total, x.fileType)
	err := x.a.exports.UpdateExportJob(ctx, x.job.ID, x.node, func(j *store.ExportJob) {
		j.Progress, j.LeaseUntil, j.UpdatedAt = progress, time.Now().UTC().Add(exportLease), time.Now().UTC()
	})
	if errors.Is(err, store.ErrNotFound) {
		return errJobGone
	}
	return err
}

// closeFile flushes and records the current file, if it has lines.
func (x *exportRun) closeFile(ctx context.Context) error {
	if x.fileType == "" || x.fileLines == 0 {
		return nil
	}
	if err := x.flush(ctx); err != nil {
		return err
	}
	err := x.a.exports.AddExportFile(ctx, x.node, store.ExportFile{JobID: x.job.ID, Seq: x.fileSeq, Type: x.fileType, Count: x.fileLines, Bytes: x.fileBytes})
	if errors.Is(err, store.ErrNotFound) {
		return errJobGone
	}
	x.fileType, x.fileLines = "", 0
	return err
}
