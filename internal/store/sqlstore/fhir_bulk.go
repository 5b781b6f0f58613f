package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"smartgate/internal/store"
)

// PutNew implements store.FHIRTx: resources never written before, created
// in bulk. The index rows and memberships of all the resources go into
// multi-row INSERTs of up to bulkSizes[0] rows, and nothing is read or
// deleted (an update's Put needs both). On SQLite the resources' rows do
// too (putNewSQLite); on PostgreSQL each resource is one statement, whose
// row key the others need, and their history rows multi-row INSERTs.
func (t *fhirTx) PutNew(ctx context.Context, ws []store.Write) error {
	if !t.db.postgres {
		return t.putNewSQLite(ctx, ws)
	}
	db := t.db
	insRes := db.q("INSERT INTO fhir_resources (res_type, res_id, version, last_updated, deleted, body) VALUES (?, ?, 1, ?, 0, ?) RETURNING rid")
	b := &bulkRows{t: t, ctx: ctx}
	for _, w := range ws {
		now, body, method, err := t.newVersion(w)
		if err != nil {
			return err
		}
		var rid int64
		if err := t.queryRow(ctx, insRes, w.Type, w.ID, micros(now), string(body)).Scan(&rid); err != nil {
			return newConflict(err, []store.Write{w})
		}
		b.add(historyTable, rid, w.Type, w.ID, 1, micros(now), 0, method, "") // the body is the resource row's (historyBody)
		b.addIndex(rid, w.Type, w.ID, w.Index)
		if b.err != nil {
			return b.err
		}
	}
	return b.flushAll()
}

// putNewSQLite is PutNew on SQLite, where this transaction is the only
// writer: the new rows' keys are the ones after the largest, as SQLite
// itself picks them, so the resources go into multi-row INSERTs too, and
// their history rows are copied from them by one INSERT ... SELECT per run
// of the same method, without the body, which the current version's
// history row does not hold (historyBody). (A statement per resource and
// each body bound twice were a third of the writer's time.)
func (t *fhirTx) putNewSQLite(ctx context.Context, ws []store.Write) error {
	var last int64
	if err := t.queryRow(ctx, "SELECT COALESCE(MAX(rid), 0) FROM fhir_resources").Scan(&last); err != nil {
		return err
	}
	type run struct {
		from, to int64
		method   string
	}
	var runs []run
	b := &bulkRows{t: t, ctx: ctx}
	for _, w := range ws {
		now, body, method, err := t.newVersion(w)
		if err != nil {
			return err
		}
		last++
		rid := last
		if n := len(runs); n > 0 && runs[n-1].method == method {
			runs[n-1].to = rid
		} else {
			runs = append(runs, run{rid, rid, method})
		}
		b.add(resourceTable, rid, w.Type, w.ID, 1, micros(now), 0, string(body))
		b.addIndex(rid, w.Type, w.ID, w.Index)
		if b.err != nil {
			return newConflict(b.err, ws)
		}
	}
	if err := b.flushAll(); err != nil {
		return newConflict(err, ws)
	}
	for _, r := range runs {
		if _, err := t.exec(ctx, "INSERT OR FAIL INTO fhir_history (rid, res_type, res_id, version, last_updated, deleted, method, body)"+
			" SELECT rid, res_type, res_id, 1, last_updated, 0, ?, '' FROM fhir_resources WHERE rid BETWEEN ? AND ?", r.method, r.from, r.to); err != nil {
			return err
		}
	}
	return nil
}

// newVersion is the time of w's write, its body as version 1 written then
// (stamped in place when MetaTemplate prepared it) and the method its
// history row records.
func (t *fhirTx) newVersion(w store.Write) (now time.Time, body []byte, method string, err error) {
	now = t.db.now().UTC()
	body = w.Body
	if w.MetaAt == 0 || !store.Stamp(body, w.MetaAt, now) {
		if body, err = store.SetMeta(w.Body, w.Type, w.ID, 1, now); err != nil {
			return now, nil, "", fmt.Errorf("%s/%s: %w", w.Type, w.ID, err)
		}
	}
	method = w.Method
	if method == "" {
		method = "create"
	}
	return now, body, method, nil
}

// newConflict is the error of a bulk create that met an id written before
// (ErrConflict, naming the id when the batch has one resource); other
// errors pass as they are.
func newConflict(err error, ws []store.Write) error {
	if !isUniqueViolation(err) {
		return err
	}
	if len(ws) == 1 {
		return fmt.Errorf("%s/%s was written before: %w", ws[0].Type, ws[0].ID, store.ErrConflict)
	}
	return fmt.Errorf("one of %d resources (%s/%s first) was written before: %w", len(ws), ws[0].Type, ws[0].ID, store.ErrConflict)
}

// Written implements store.FHIRTx.
func (t *fhirTx) Written(ctx context.Context, typ string, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)] // well under bind-variable limits
		ids = ids[len(chunk):]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, typ)
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := t.tx.QueryContext(ctx, t.db.q("SELECT res_id FROM fhir_resources WHERE res_type = ? AND res_id IN ("+placeholders(len(chunk))+")"), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			out[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// addIndex adds the index rows and memberships of resource typ/id (row
// key rid): its own memberships (via ”) and those it gives others (via
// "typ/id"), each once.
func (b *bulkRows) addIndex(rid int64, typ, id string, ix store.Index) {
	// Every token row holds the patient whose compartment its resource
	// is in by its own content (schema 15, patientKey).
	patients := dedupe(ix.Patients)
	key := patientsKey(patients)
	for _, r := range ix.Tokens {
		b.add(0, rid, typ, r.Param, r.System, r.Code, r.Text, key)
	}
	for _, r := range ix.Strings {
		b.add(1, rid, typ, r.Param, r.Norm, r.Exact)
	}
	for _, r := range ix.Refs {
		b.add(2, rid, typ, r.Param, r.Type, r.ID, r.URL, r.IdentSystem, r.IdentValue)
	}
	for _, r := range ix.Dates {
		b.add(3, rid, typ, r.Param, r.Low, r.High)
	}
	for _, r := range ix.Quantities {
		b.add(4, rid, typ, r.Param, r.Value, r.System, r.Code, r.Unit)
	}
	for _, r := range ix.Numbers {
		b.add(5, rid, typ, r.Param, r.Value)
	}
	for _, r := range ix.URIs {
		b.add(6, rid, typ, r.Param, r.Value)
	}
	// A membership by the resource's own content holds its row key
	// (schema 13), by which a compartment drives a search; one it gives a
	// Binary holds 0: that Binary may not exist yet (compartmentKeyed).
	for _, p := range patients {
		b.add(7, typ, id, p, "", rid)
	}
	seen := map[store.Membership]bool{}
	for _, m := range ix.Links {
		if !seen[m] {
			seen[m] = true
			b.add(7, m.Type, m.ID, m.Patient, typ+"/"+id, 0)
		}
	}
}

// flushAll writes what is left of every table.
func (b *bulkRows) flushAll() error {
	if b.err != nil {
		return b.err
	}
	for table := range bulkTables {
		if err := b.flush(table); err != nil {
			return err
		}
	}
	return nil
}

// bulkTables are the tables filled with multi-row INSERTs (by PutNew, and
// by Put for a version's index rows).
var bulkTables = [...]struct{ table, cols string }{
	{"fhir_token", "rid, res_type, param, system, code, text, patient_key"},
	{"fhir_string", "rid, res_type, param, norm, exact"},
	{"fhir_ref", "rid, res_type, param, target_type, target_id, url, ident_system, ident_value"},
	{"fhir_date", "rid, res_type, param, low, high"},
	{"fhir_quantity", "rid, res_type, param, value, system, code, unit"},
	{"fhir_number", "rid, res_type, param, value"},
	{"fhir_uri", "rid, res_type, param, value"},
	{"fhir_compartment", "res_type, res_id, patient_id, via, rid"},
	{"fhir_history", "rid, res_type, res_id, version, last_updated, deleted, method, body"},
	{"fhir_resources", "rid, res_type, res_id, version, last_updated, deleted, body"},
}

// The bulk tables that are not index tables.
const (
	historyTable  = 8
	resourceTable = 9
)

// bulkSizes are the row counts of the bulk INSERTs. A table's rows go out
// in batches of the largest. On SQLite, once a bulk load has prepared the
// statements of these sizes (prepareBulk), the rest go out in them too,
// the largest that fits first, so that every statement has one of a few
// fixed shapes, parsed once rather than in every transaction (parsing was
// 7% of the writer's time). Otherwise the rest are one statement of their
// count. The largest, with at most 8 columns, is 2,048 bind variables,
// under SQLite's 32,766 and PostgreSQL's 65,535.
var bulkSizes = [...]int{256, 64, 16, 4, 1}

// insertRows is the INSERT of n rows into bulkTables[table]. On SQLite,
// OR FAIL spares a statement journal (a copy of every page the INSERT
// changes, kept to undo it alone): a failed INSERT fails the whole
// transaction here anyway. PostgreSQL has no such clause.
func (db *DB) insertRows(table, n int) string {
	spec := bulkTables[table]
	row := "(" + placeholders(strings.Count(spec.cols, ",")+1) + ")"
	verb := "INSERT OR FAIL INTO "
	if db.postgres {
		verb = "INSERT INTO "
	}
	return db.q(verb + spec.table + " (" + spec.cols + ") VALUES " + row + strings.Repeat(", "+row, n-1))
}

// bulkStmts are the INSERTs of bulkSizes[k] rows into bulkTables[t], at
// [t][k] (nil for history on SQLite, which copies those rows).
type bulkStmts [len(bulkTables)][len(bulkSizes)]*sql.Stmt

func (bs *bulkStmts) close() error {
	var errs []error
	for t := range bs {
		for _, st := range bs[t] {
			if st != nil {
				errs = append(errs, st.Close())
			}
		}
	}
	return errors.Join(errs...)
}

// bulkStmt is the statement of bulkSizes[k] rows into table, prepared on
// the writer by prepareBulk, bound to this transaction.
func (t *fhirTx) bulkStmt(ctx context.Context, shared *bulkStmts, table, k int) *sql.Stmt {
	if t.bulk[table][k] == nil {
		t.bulk[table][k] = t.tx.StmtContext(ctx, shared[table][k])
	}
	return t.bulk[table][k]
}

// bulkRows collects the rows of each bulk table.
type bulkRows struct {
	t    *fhirTx
	ctx  context.Context
	args [len(bulkTables)][]any
	n    [len(bulkTables)]int
	err  error
}

func (b *bulkRows) add(table int, vals ...any) {
	if b.err != nil {
		return
	}
	b.args[table] = append(b.args[table], vals...)
	b.n[table]++
	if b.n[table] == bulkSizes[0] {
		b.err = b.flush(table)
	}
}

func (b *bulkRows) flush(table int) error {
	n, args := b.n[table], b.args[table]
	b.args[table], b.n[table] = b.args[table][:0], 0
	if n == 0 {
		return nil
	}
	shared := b.t.db.bulkStmts.Load()
	if shared == nil {
		// No bulk load prepared the fixed shapes (PostgreSQL, whose driver
		// caches statements itself, or a server's own writes, a few rows
		// a table): one statement of exactly n rows, prepared in this
		// transaction, rather than several of the fixed sizes.
		_, err := b.t.exec(b.ctx, b.t.db.insertRows(table, n), args...)
		return err
	}
	cols := len(args) / n
	for k := 0; n > 0; {
		if bulkSizes[k] > n {
			k++
			continue
		}
		m := bulkSizes[k]
		if _, err := b.t.bulkStmt(b.ctx, shared, table, k).ExecContext(b.ctx, args[:m*cols]...); err != nil {
			return err
		}
		args, n = args[m*cols:], n-m
	}
	return nil
}
