package fhir

import (
	"bytes"
	"context"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	"smartgate/internal/store"
)

// PreparedSeed is a resource validated and indexed for SeedPrepared.
type PreparedSeed struct {
	w store.Write
}

// PrepareSeed validates and indexes one resource for SeedPrepared, as
// Seed does, but outside any transaction: callers loading much data run
// it on several goroutines while one goroutine writes (SQLite has one
// writer; validation and indexing are the part that parallelises).
func (a *API) PrepareSeed(r SeedResource) (PreparedSeed, error) {
	body, metaAt, ix, err := a.prepareNew(r.Type, r.ID, r.Body)
	if err != nil {
		return PreparedSeed{}, fmt.Errorf("%s/%s: %w", r.Type, r.ID, err)
	}
	return PreparedSeed{store.Write{Type: r.Type, ID: r.ID, Body: body, Index: ix, MetaAt: metaAt}}, nil
}

// BulkLoad is a bulk load's hold on the store (BeginBulkLoad). Its
// methods take a nil BulkLoad (no load begun) as one that deferred nothing.
type BulkLoad struct {
	st bulkLoader
	// pending: the store deferred its search indexes to the end of the
	// load (a load into an empty SQLite store) and End has not run;
	// searches beside the load answer correctly, only slower.
	pending  bool
	building atomic.Bool
	// Seconds is how long End spent building the deferred indexes, and
	// Err why the build failed.
	Seconds float64
	Err     error
}

// bulkLoader is a store that can be readied for a bulk load
// (sqlstore.DB).
type bulkLoader interface {
	BeginBulkLoad(context.Context) (bool, error)
	BuildDeferredIndexes(context.Context) ([]string, error)
}

// BeginBulkLoad readies the store for a bulk load (seed, import) where it
// can be: on SQLite a larger write cache and, into an empty FHIR store,
// search indexes built once at the end instead of row by row. The loader
// calls End when it stops, whatever the outcome. A load that cannot ready
// the store loads all the same, only slower: the error says why.
func (a *API) BeginBulkLoad(ctx context.Context) (*BulkLoad, error) {
	st, ok := a.store.(bulkLoader)
	if !ok {
		return &BulkLoad{}, nil
	}
	deferred, err := st.BeginBulkLoad(ctx)
	return &BulkLoad{pending: deferred, st: st}, err
}

// Building says End is building the deferred indexes (for progress).
func (b *BulkLoad) Building() bool { return b != nil && b.building.Load() }

// End builds the indexes the load deferred, if any, recording how long
// that took (Seconds) and why it failed (Err, also returned); after End
// the store is as fast to search as it is after any write. It runs even
// when ctx is cancelled (an interrupted load's data is stored and must be
// searchable); if the build itself is stopped, the next `smartgate
// migrate` or `serve` completes it. Calling End again does nothing.
func (b *BulkLoad) End(ctx context.Context) error {
	if b == nil || !b.pending {
		return nil
	}
	b.pending = false
	b.building.Store(true)
	defer b.building.Store(false)
	start := time.Now()
	// The load's garbage is done with: give its heap back before SQLite's
	// sorters take their memory, or the two add up (the 1M seed's largest
	// RSS, 273-309 MB, was in the build; the load's own stayed under 200).
	debug.FreeOSMemory()
	_, b.Err = b.st.BuildDeferredIndexes(context.WithoutCancel(ctx))
	b.Seconds = time.Since(start).Seconds()
	return b.Err
}

// SeedCounts says what SeedPrepared did.
type SeedCounts struct {
	Created, Updated, Unchanged int
}

// SeedPrepared stores prepared resources in one transaction with no
// access check (the command line's bulk loads). A resource whose current
// version already has the same content is left alone, so loading the same
// data again writes nothing and adds no versions; others are created or
// updated with their ids kept.
func (a *API) SeedPrepared(ctx context.Context, ps []PreparedSeed) (SeedCounts, error) {
	var n SeedCounts
	err := a.store.WriteFHIR(ctx, func(tx store.FHIRTx) error {
		n = SeedCounts{}
		current, err := currentOf(ctx, tx, ps)
		if err != nil {
			return err
		}
		np, bulk := tx.(newPutter)
		var fresh []store.Write
		for _, p := range ps {
			cur, exists := current[p.w.Type+"/"+p.w.ID]
			if exists {
				same, err := store.SetMeta(p.w.Body, p.w.Type, p.w.ID, cur.Version, cur.LastUpdated)
				if err == nil && bytes.Equal(same, cur.Body) {
					n.Unchanged++
					continue
				}
			}
			if !exists && bulk {
				fresh = append(fresh, p.w)
				n.Created++
				continue
			}
			if _, err := tx.Put(ctx, p.w); err != nil {
				return fmt.Errorf("%s/%s: %w", p.w.Type, p.w.ID, err)
			}
			if exists {
				n.Updated++
			} else {
				n.Created++
			}
		}
		if len(fresh) > 0 {
			return np.PutNew(ctx, fresh)
		}
		return nil
	})
	return n, err
}

// newPutter is what a store transaction may offer for bulk loads: creating
// resources whose ids were never written, in bulk, faster than a Put each
// (no read of a current version, no old index rows to delete, statements
// and multi-row INSERTs shared by the whole batch). SeedPrepared uses it
// when the store has it.
type newPutter interface {
	PutNew(ctx context.Context, ws []store.Write) error
}

// currentOf reads the current versions of the resources of ps that exist,
// with one query per resource type.
func currentOf(ctx context.Context, tx store.FHIRTx, ps []PreparedSeed) (map[string]store.Resource, error) {
	byType := map[string][]string{}
	for _, p := range ps {
		byType[p.w.Type] = append(byType[p.w.Type], p.w.ID)
	}
	// Most of a first load was never written: a look at the ids alone
	// finds the few whose stored versions are worth reading.
	written, err := writtenOf(ctx, tx, byType)
	if err != nil {
		return nil, err
	}
	toRead := map[string][]string{}
	for typ, ids := range byType {
		for _, id := range ids {
			if written[typ+"/"+id] {
				toRead[typ] = append(toRead[typ], id)
			}
		}
	}
	return currentVersions(ctx, tx, toRead)
}

// writtenOf says which of the ids of each type were ever written (current
// or deleted), keyed "Type/id".
func writtenOf(ctx context.Context, tx store.FHIRTx, byType map[string][]string) (map[string]bool, error) {
	out := map[string]bool{}
	for typ, ids := range byType {
		w, err := tx.Written(ctx, typ, ids)
		if err != nil {
			return nil, err
		}
		for id := range w {
			out[typ+"/"+id] = true
		}
	}
	return out, nil
}

// currentVersions reads the current (not deleted) versions of the ids of
// each type, keyed "Type/id", with a search per type per 500 ids.
func currentVersions(ctx context.Context, tx store.FHIRTx, byType map[string][]string) (map[string]store.Resource, error) {
	out := map[string]store.Resource{}
	for typ, ids := range byType {
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), 500)] // well under SQL bind-variable limits
			ids = ids[len(chunk):]
			res, err := tx.Search(ctx, store.Query{Type: typ, Where: store.IDIn{IDs: chunk}, Page: store.Page{Count: len(chunk)}})
			if err != nil {
				return nil, err
			}
			for _, f := range res.Resources {
				out[typ+"/"+f.ID] = f.Resource
			}
		}
	}
	return out, nil
}
