package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
	"time"

	"smartgate/internal/store"
)

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const resourceColumns = "r.rid, r.res_type, r.res_id, r.version, r.last_updated, r.deleted, r.body"

func scanResource(r rowScanner) (store.Found, error) {
	var f store.Found
	var updated int64
	var deleted int
	var body string
	if err := r.Scan(&f.Key, &f.Type, &f.ID, &f.Version, &updated, &deleted, &body); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return f, store.ErrNotFound
		}
		return f, err
	}
	f.LastUpdated = fromMicros(updated)
	f.Deleted = deleted != 0
	if !f.Deleted {
		f.Body = []byte(body)
	}
	return f, nil
}

// readQuery reads one resource by type and id.
const readQuery = "SELECT " + resourceColumns + " FROM fhir_resources r WHERE r.res_type = ? AND r.res_id = ?"

// ReadResource implements store.FHIR. A read by id is the most frequent
// query: on SQLite it runs as a statement kept prepared on the readers
// (readers), which saved 15-50 µs of a read of about 20 µs more.
func (db *DB) ReadResource(ctx context.Context, typ, id string, access store.Cond) (store.Resource, error) {
	return readResource(ctx, db, db.readers(), typ, id, access)
}

func readResource(ctx context.Context, db *DB, q querier, typ, id string, access store.Cond) (store.Resource, error) {
	var f store.Found
	var err error
	if access == nil {
		f, err = scanResource(q.QueryRowContext(ctx, db.q(readQuery), typ, id))
	} else {
		f, err = db.readChecked(ctx, q, typ, id, access)
	}
	if err != nil {
		return store.Resource{}, err
	}
	if f.Deleted {
		return f.Resource, store.ErrGone
	}
	return f.Resource, nil
}

// readChecked reads a resource and checks access in one statement (the
// check a column of the row's query; two statements were a fifth more of a
// read's CPU): ErrAccessDenied when it fails.
func (db *DB) readChecked(ctx context.Context, q querier, typ, id string, access store.Cond) (f store.Found, err error) {
	err = db.unhintedIfMissing(func() error {
		cb := &condBuilder{db: db}
		where := cb.build(access, "r", typ)
		var allowed int
		f, err = scanResource(withColumn{q.QueryRowContext(ctx, db.q("SELECT "+resourceColumns+", CASE WHEN "+where+" THEN 1 ELSE 0 END FROM fhir_resources r WHERE r.res_type = ? AND r.res_id = ?"),
			append(cb.args, typ, id)...), &allowed})
		if err == nil && allowed == 0 {
			err = store.ErrAccessDenied
		}
		return err
	})
	return f, err
}

// withColumn scans one more column after the resource's.
type withColumn struct {
	r     rowScanner
	extra any
}

func (w withColumn) Scan(dest ...any) error { return w.r.Scan(append(dest, w.extra)...) }

// holds reports whether the resource with row key rid satisfies c.
func (db *DB) holds(ctx context.Context, q querier, rid int64, typ string, c store.Cond) (ok bool, err error) {
	err = db.unhintedIfMissing(func() error {
		cb := &condBuilder{db: db}
		where := cb.build(c, "r", typ)
		args := append([]any{rid}, cb.args...)
		var one int
		err := q.QueryRowContext(ctx, db.q("SELECT 1 FROM fhir_resources r WHERE r.rid = ? AND "+where), args...).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			ok = false
			return nil
		}
		ok = err == nil
		return err
	})
	return ok, err
}

// historyBody is a history row's body. The row of a resource's current
// version holds none (an empty string): its body is the resource row's,
// stored once (twice, it was a quarter of a store's size). When a version
// stops being current, Put copies the body into its history row first
// (keepBody). A deleted version has no body; rows written before this
// held keep their copy, which is used as it is.
const historyBody = "CASE WHEN fhir_history.body = '' AND fhir_history.deleted = 0" +
	" THEN (SELECT r.body FROM fhir_resources r WHERE r.rid = fhir_history.rid) ELSE fhir_history.body END"

// ReadVersion implements store.FHIR.
func (db *DB) ReadVersion(ctx context.Context, typ, id string, version int64) (store.Resource, error) {
	var r store.Resource
	var updated int64
	var deleted int
	var body string
	err := db.readers().QueryRowContext(ctx, db.q("SELECT res_type, res_id, version, last_updated, deleted, method, "+historyBody+" FROM fhir_history WHERE res_type = ? AND res_id = ? AND version = ?"), typ, id, version).
		Scan(&r.Type, &r.ID, &r.Version, &updated, &deleted, &r.Method, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return r, store.ErrNotFound
	}
	if err != nil {
		return r, err
	}
	r.LastUpdated, r.Deleted = fromMicros(updated), deleted != 0
	if !r.Deleted {
		r.Body = []byte(body)
	}
	return r, nil
}

// Search implements store.FHIR.
func (db *DB) Search(ctx context.Context, q store.Query) (store.SearchResult, error) {
	return db.search(ctx, db.readers(), q)
}

func (db *DB) search(ctx context.Context, qr querier, q store.Query) (res store.SearchResult, err error) {
	err = db.unhintedIfMissing(func() error {
		res, err = db.searchOnce(ctx, qr, q)
		return err
	})
	return res, err
}

func (db *DB) searchOnce(ctx context.Context, qr querier, q store.Query) (res store.SearchResult, err error) {
	res = store.SearchResult{Total: -1}
	cb := &condBuilder{db: db}
	driver, narrow, err := db.probeDriver(ctx, qr, q.Where, q.Type)
	if err != nil {
		return res, err
	}
	if driver >= 0 {
		cb.probed, cb.probedNarrow = driver+1, narrow
		if _, ok := q.Where.(store.And); !ok {
			q.Where = store.And{q.Where} // the AND's driver choice applies it
		}
	}
	cb.args = append(cb.args, q.Type)
	cond := ""
	if q.Where != nil {
		cond = " AND " + cb.build(q.Where, "r", q.Type)
	}
	where := "r.res_type = ? AND r.deleted = 0" + cond
	// The page's query: when the condition's driver gives the resources'
	// row keys, SQLite finds each row by its key alone (rowKeysFirst).
	pageWhere := where
	if db.rowKeysFirst(q.Where, cond) {
		pageWhere = "+r.res_type = ? AND +r.deleted = 0" + cond
	}
	countQuery, countArgs := "SELECT COUNT(*) FROM fhir_resources r WHERE "+where, append([]any(nil), cb.args...)
	count := func() error {
		return qr.QueryRowContext(ctx, db.q(countQuery), countArgs...).Scan(&res.Total)
	}
	if q.Page.Count <= 0 {
		if q.Page.Total {
			err = count()
		}
		return res, err
	}
	// The total of a first page that holds every match is its length: the
	// COUNT, which costs as much as the page, runs only when more follow
	// (most patient-scoped searches fit in one page).
	defer func() {
		if q.Page.Total && err == nil {
			if q.Page.After <= 0 && !res.More {
				res.Total = len(res.Resources)
				return
			}
			err = count()
		}
	}()
	if len(q.Sort) == 0 {
		if q.Page.After > 0 {
			pageWhere += " AND r.rid > ?"
			cb.args = append(cb.args, q.Page.After)
		}
		query := "SELECT " + resourceColumns + " FROM fhir_resources r WHERE " + pageWhere + " ORDER BY r.rid LIMIT ?"
		err = db.collect(ctx, qr, query, append(cb.args, q.Page.Count+1), q.Page.Count, 0, &res)
		return res, err
	}
	// Sorted: the inner query computes each sort value once (s0, s1...,
	// with n0, n1... saying whether it is missing, so that missing values
	// come last on both engines in either direction); the outer one pages
	// by keyset on (sort values, rid).
	sel := &condBuilder{db: db}
	var cols, order []string
	for i, srt := range q.Sort {
		e := sel.sortExpr(srt, q.Type)
		n := strconv.Itoa(i)
		cols = append(cols, "("+e+") AS s"+n)
		dir := ""
		if srt.Desc {
			dir = " DESC"
		}
		order = append(order, "(x.s"+n+" IS NULL)", "x.s"+n+dir)
	}
	order = append(order, "x.rid")
	args := append(sel.args, cb.args...)
	outer := ""
	if q.Page.After > 0 && len(q.Page.AfterValues) == len(q.Sort) {
		var ors []string
		var eqs []string
		var eqArgs []any
		for i, srt := range q.Sort {
			col := "x.s" + strconv.Itoa(i)
			v := q.Page.AfterValues[i]
			if v != nil {
				op := " > ?"
				if srt.Desc {
					op = " < ?"
				}
				ors = append(ors, "("+strings.Join(append(append([]string(nil), eqs...), "("+col+op+" OR "+col+" IS NULL)"), " AND ")+")")
				args = append(args, eqArgs...)
				args = append(args, v)
				eqs = append(eqs, col+" = ?")
				eqArgs = append(eqArgs, v)
			} else {
				eqs = append(eqs, col+" IS NULL")
			}
		}
		ors = append(ors, "("+strings.Join(append(eqs, "x.rid > ?"), " AND ")+")")
		args = append(args, eqArgs...)
		args = append(args, q.Page.After)
		outer = " WHERE " + strings.Join(ors, " OR ")
	}
	query := "SELECT * FROM (SELECT " + resourceColumns + ", " + strings.Join(cols, ", ") + " FROM fhir_resources r WHERE " + where + ") x" +
		outer + " ORDER BY " + strings.Join(order, ", ") + " LIMIT ?"
	err = db.collect(ctx, qr, query, append(args, q.Page.Count+1), q.Page.Count, len(q.Sort), &res)
	return res, err
}

// rowKeysFirst says whether SQLite should find a search's rows by their
// row keys alone: the condition is an AND whose driver gives the
// resources' row keys (its SQL, " AND " and then what condBuilder.build
// makes of an AND, starts with that driver's r.rid IN (...)). The type
// and deleted terms, prefixed with the no-op unary +, are then checked on
// the row instead of leading SQLite to look each key up in
// fhir_resources_type (res_type, deleted, rid) first and then in the
// table: two B-tree searches for one (8-10% of the SQL's CPU for a
// patient's Observations of a code at 1M resources). The COUNT keeps the
// index: it may answer from the index alone.
func (db *DB) rowKeysFirst(c store.Cond, cond string) bool {
	_, and := c.(store.And)
	return and && !db.postgres && strings.HasPrefix(cond, " AND (r.rid IN (")
}

// collect scans up to count resources (and nsort sort values each) into
// res, and whether more follow.
func (db *DB) collect(ctx context.Context, qr querier, query string, args []any, count, nsort int, res *store.SearchResult) error {
	rows, err := qr.QueryContext(ctx, db.q(query), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if len(res.Resources) == count {
			res.More = true
			break
		}
		var f store.Found
		var updated int64
		var deleted int
		var body string
		dest := []any{&f.Key, &f.Type, &f.ID, &f.Version, &updated, &deleted, &body}
		vals := make([]any, nsort)
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		f.LastUpdated, f.Deleted, f.Body = fromMicros(updated), deleted != 0, []byte(body)
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				vals[i] = string(b)
			}
		}
		if nsort > 0 {
			f.SortValues = vals
		}
		res.Resources = append(res.Resources, f)
	}
	return rows.Err()
}

// Includes implements store.FHIR.
func (db *DB) Includes(ctx context.Context, from []int64, inc store.Include, limit int) ([]store.Found, error) {
	return db.includes(ctx, db.readers(), from, inc, limit)
}

// includeQuery is the query of includes (SQL with ? placeholders).
func (db *DB) includeQuery(from []int64, inc store.Include, limit int) (string, []any) {
	var query string
	args := []any{}
	keys := placeholders(len(from))
	if inc.Rev {
		// The references to the page's resources, by target (as below,
		// SQLite otherwise walked every reference of the parameter: for
		// _revinclude=Provenance:target, every target of every
		// Provenance).
		ref := "fhir_ref f"
		if !db.postgres {
			ref += " INDEXED BY fhir_ref_rev"
		}
		query = "SELECT DISTINCT " + resourceColumns + " FROM " + ref + " JOIN fhir_resources src ON src.res_type = f.target_type AND src.res_id = f.target_id JOIN fhir_resources r ON r.rid = f.rid" +
			" WHERE src.rid IN (" + keys + ") AND f.res_type = ? AND f.param = ? AND r.deleted = 0"
		for _, k := range from {
			args = append(args, k)
		}
		args = append(args, inc.SourceType, inc.Param)
	} else {
		// The page's references, by rid. Left to choose, SQLite walked
		// every reference of the parameter (fhir_ref_target on res_type
		// and param) looking for the page's rids, so an _include grew
		// with the database: a patient's MedicationRequests with
		// _include of medication and requester cost 1.7 ms of server CPU
		// at 10k resources and 5.2 ms at 100k.
		ref := "fhir_ref f"
		if !db.postgres {
			ref += " INDEXED BY fhir_ref_rid"
		}
		query = "SELECT DISTINCT " + resourceColumns + " FROM " + ref + " JOIN fhir_resources r ON r.res_type = f.target_type AND r.res_id = f.target_id" +
			" WHERE f.rid IN (" + keys + ") AND f.res_type = ? AND f.param = ? AND r.deleted = 0"
		for _, k := range from {
			args = append(args, k)
		}
		args = append(args, inc.SourceType, inc.Param)
		if inc.TargetType != "" {
			query += " AND r.res_type = ?"
			args = append(args, inc.TargetType)
		}
	}
	query += " ORDER BY r.rid LIMIT ?"
	args = append(args, limit)
	return query, args
}

func (db *DB) includes(ctx context.Context, qr querier, from []int64, inc store.Include, limit int) ([]store.Found, error) {
	if len(from) == 0 || limit <= 0 {
		return nil, nil
	}
	query, args := db.includeQuery(from, inc, limit)
	rows, err := qr.QueryContext(ctx, db.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Found
	for rows.Next() {
		f, err := scanResource(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// History implements store.FHIR.
func (db *DB) History(ctx context.Context, q store.HistoryQuery) (out []store.HistoryEntry, more bool, err error) {
	err = db.unhintedIfMissing(func() error {
		out, more, err = db.history(ctx, q)
		return err
	})
	return out, more, err
}

func (db *DB) history(ctx context.Context, q store.HistoryQuery) ([]store.HistoryEntry, bool, error) {
	var where []string
	var args []any
	if q.Type != "" {
		where = append(where, "res_type = ?")
		args = append(args, q.Type)
	}
	if q.ID != "" {
		where = append(where, "res_id = ?")
		args = append(args, q.ID)
	}
	if !q.Since.IsZero() {
		where = append(where, "last_updated >= ?")
		args = append(args, micros(q.Since))
	}
	if !q.At.IsZero() {
		// _at: only the version that was current at that instant.
		at := micros(q.At)
		where = append(where, "last_updated <= ? AND NOT EXISTS (SELECT 1 FROM fhir_history n WHERE n.rid = fhir_history.rid AND n.version > fhir_history.version AND n.last_updated <= ?)")
		args = append(args, at, at)
	}
	if q.Where != nil {
		cb := &condBuilder{db: db}
		where = append(where, "rid IN (SELECT r.rid FROM fhir_resources r WHERE r.res_type = ? AND "+cb.build(q.Where, "r", q.Type)+")")
		args = append(args, q.Type)
		args = append(args, cb.args...)
	}
	if q.BeforeKey > 0 {
		where = append(where, "(last_updated < ? OR (last_updated = ? AND hid < ?))")
		bt := micros(q.BeforeTime)
		args = append(args, bt, bt, q.BeforeKey)
	}
	if q.Count <= 0 {
		q.Count = 50
	}
	query := "SELECT hid, res_type, res_id, version, last_updated, deleted, method, " + historyBody + " FROM fhir_history"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY last_updated DESC, hid DESC LIMIT ?"
	args = append(args, q.Count+1)
	rows, err := db.readers().QueryContext(ctx, db.q(query), args...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	var out []store.HistoryEntry
	more := false
	for rows.Next() {
		var e store.HistoryEntry
		var updated int64
		var deleted int
		var body string
		if err := rows.Scan(&e.Key, &e.Type, &e.ID, &e.Version, &updated, &deleted, &e.Method, &body); err != nil {
			return nil, false, err
		}
		if len(out) == q.Count {
			more = true
			break
		}
		e.LastUpdated, e.Deleted = fromMicros(updated), deleted != 0
		if !e.Deleted {
			e.Body = []byte(body)
		}
		out = append(out, e)
	}
	return out, more, rows.Err()
}

// WriteFHIR implements store.FHIR.
func (db *DB) WriteFHIR(ctx context.Context, fn func(tx store.FHIRTx) error) error {
	return db.tx(ctx, 0, func(t *sql.Tx) error {
		return fn(&fhirTx{db: db, tx: t})
	})
}

type fhirTx struct {
	db *DB
	tx *sql.Tx
	// stmts caches the statements of this transaction on SQLite, where
	// the driver keeps none: a bulk load runs the same dozen statements
	// for every resource, and parsing them again was a third of its CPU.
	// (pgx caches prepared statements itself.)
	stmts map[string]*sql.Stmt
	// bulk holds the bulk INSERTs prepared once on the writer
	// (DB.bulkStmts), bound to this transaction on first use.
	bulk bulkStmts
}

// exec runs a write statement of the transaction (query already rewritten
// by db.q), prepared once per transaction on SQLite.
func (t *fhirTx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if t.db.postgres {
		return t.tx.ExecContext(ctx, query, args...)
	}
	st, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// queryRow is exec for a statement that returns one row.
func (t *fhirTx) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if t.db.postgres {
		return t.tx.QueryRowContext(ctx, query, args...)
	}
	st, err := t.stmt(ctx, query)
	if err != nil {
		// A failed prepare surfaces as the row's error.
		return t.tx.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

func (t *fhirTx) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := t.stmts[query]; ok {
		return st, nil
	}
	st, err := t.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if t.stmts == nil {
		t.stmts = map[string]*sql.Stmt{}
	}
	if len(t.stmts) < 512 { // bounded: multi-row inserts vary in shape
		t.stmts[query] = st
	}
	return st, nil
}

func (t *fhirTx) Current(ctx context.Context, typ, id string) (store.Resource, error) {
	return readResource(ctx, t.db, t.tx, typ, id, nil)
}

func (t *fhirTx) ReadResource(ctx context.Context, typ, id string, access store.Cond) (store.Resource, error) {
	return readResource(ctx, t.db, t.tx, typ, id, access)
}

func (t *fhirTx) Includes(ctx context.Context, from []int64, inc store.Include, limit int) ([]store.Found, error) {
	return t.db.includes(ctx, t.tx, from, inc, limit)
}

func (t *fhirTx) Search(ctx context.Context, q store.Query) (store.SearchResult, error) {
	return t.db.search(ctx, t.tx, q)
}

func (t *fhirTx) Lock(ctx context.Context, key string) error {
	if !t.db.postgres {
		return nil
	}
	h := fnv.New64a()
	h.Write([]byte("fhir:" + key))
	_, err := t.tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(h.Sum64()))
	return err
}

// Put implements store.FHIRTx.
func (t *fhirTx) Put(ctx context.Context, w store.Write) (store.Resource, error) {
	db, tx := t.db, t.tx
	lock := ""
	if db.postgres {
		lock = " FOR UPDATE"
	}
	cur, err := scanResource(t.queryRow(ctx, db.q("SELECT "+resourceColumns+" FROM fhir_resources r WHERE r.res_type = ? AND r.res_id = ?"+lock), w.Type, w.ID))
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Resource{}, err
	}
	// A deleted resource keeps its index rows and memberships, so the
	// access check covers it too: nobody revives (and so exposes the
	// history of) a deleted resource outside their access.
	if exists && w.Access != nil {
		ok, err := db.holds(ctx, tx, cur.Key, w.Type, w.Access)
		if err != nil {
			return store.Resource{}, err
		}
		if !ok {
			return store.Resource{}, store.ErrAccessDenied
		}
	}
	if w.IfMatch != 0 && (!exists || cur.Version != w.IfMatch) {
		return store.Resource{}, store.ErrVersionConflict
	}
	if w.MustExist && !exists {
		return store.Resource{}, store.ErrNotFound
	}
	now := db.now().UTC()
	if exists && !now.After(cur.LastUpdated) {
		// lastUpdated never goes backwards for one resource, even when the
		// clock does or two writes fall in one microsecond.
		now = cur.LastUpdated.Add(time.Microsecond)
	}
	if w.Delete {
		if !exists || cur.Deleted {
			return store.Resource{}, nil
		}
		r := store.Resource{Type: w.Type, ID: w.ID, Version: cur.Version + 1, LastUpdated: now, Deleted: true, Method: "delete"}
		if err := t.keepBody(ctx, cur); err != nil {
			return store.Resource{}, err
		}
		if _, err := tx.ExecContext(ctx, db.q("UPDATE fhir_resources SET version = ?, last_updated = ?, deleted = 1, body = '' WHERE rid = ?"), r.Version, micros(now), cur.Key); err != nil {
			return store.Resource{}, err
		}
		if err := t.history(ctx, cur.Key, r, ""); err != nil {
			return store.Resource{}, err
		}
		return r, nil
	}
	r := store.Resource{Type: w.Type, ID: w.ID, Version: 1, LastUpdated: now, Method: "create"}
	if exists {
		r.Version = cur.Version + 1
		r.Method = "update"
	}
	if w.Method != "" {
		r.Method = w.Method
	}
	body, err := store.SetMeta(w.Body, w.Type, w.ID, r.Version, now)
	if err != nil {
		return store.Resource{}, err
	}
	r.Body = body
	rid := cur.Key
	if exists {
		if err := t.keepBody(ctx, cur); err != nil {
			return store.Resource{}, err
		}
		if _, err := t.exec(ctx, db.q("UPDATE fhir_resources SET version = ?, last_updated = ?, deleted = 0, body = ? WHERE rid = ?"), r.Version, micros(now), string(body), rid); err != nil {
			return store.Resource{}, err
		}
		if err := t.clearIndex(ctx, rid); err != nil {
			return store.Resource{}, err
		}
	} else {
		if err := t.queryRow(ctx, db.q("INSERT INTO fhir_resources (res_type, res_id, version, last_updated, deleted, body) VALUES (?, ?, ?, ?, 0, ?) RETURNING rid"),
			w.Type, w.ID, r.Version, micros(now), string(body)).Scan(&rid); err != nil {
			if isUniqueViolation(err) {
				return store.Resource{}, store.ErrConflict
			}
			return store.Resource{}, err
		}
	}
	if err := t.history(ctx, rid, r, ""); err != nil { // current: the body is the resource row's (historyBody)
		return store.Resource{}, err
	}
	if err := t.index(ctx, rid, w.Type, w.ID, w.Index); err != nil {
		return store.Resource{}, err
	}
	if w.Access != nil {
		ok, err := db.holds(ctx, tx, rid, w.Type, w.Access)
		if err != nil {
			return store.Resource{}, err
		}
		if !ok {
			return store.Resource{}, store.ErrAccessDenied
		}
	}
	return r, nil
}

// isUniqueViolation recognises a unique-constraint failure on either
// engine (PostgreSQL SQLSTATE 23505, SQLite's UNIQUE constraint failed).
func isUniqueViolation(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "23505") || strings.Contains(msg, "UNIQUE constraint failed")
}

// keepBody copies the current version's body into its history row before
// the resource row changes (see historyBody). A deleted current version has
// no body; a row written before bodies were stored once has its own.
func (t *fhirTx) keepBody(ctx context.Context, cur store.Found) error {
	if cur.Deleted {
		return nil
	}
	_, err := t.exec(ctx, t.db.q("UPDATE fhir_history SET body = (SELECT body FROM fhir_resources WHERE rid = ?) WHERE rid = ? AND version = ? AND body = ''"),
		cur.Key, cur.Key, cur.Version)
	return err
}

func (t *fhirTx) history(ctx context.Context, rid int64, r store.Resource, body string) error {
	deleted := 0
	if r.Deleted {
		deleted = 1
	}
	_, err := t.exec(ctx, t.db.q("INSERT INTO fhir_history (rid, res_type, res_id, version, last_updated, deleted, method, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
		rid, r.Type, r.ID, r.Version, micros(r.LastUpdated), deleted, r.Method, body)
	return err
}

var indexTables = []string{"fhir_token", "fhir_string", "fhir_ref", "fhir_date", "fhir_quantity", "fhir_number", "fhir_uri"}

func (t *fhirTx) clearIndex(ctx context.Context, rid int64) error {
	for _, table := range indexTables {
		if _, err := t.exec(ctx, t.db.q("DELETE FROM "+table+" WHERE rid = ?"), rid); err != nil {
			return err
		}
	}
	return nil
}

// index writes the index rows and memberships of one resource version
// (its old index rows are gone: clearIndex). The memberships it had by its
// own content and those it gave others are replaced.
func (t *fhirTx) index(ctx context.Context, rid int64, typ, id string, ix store.Index) error {
	db := t.db
	if _, err := t.exec(ctx, db.q("DELETE FROM fhir_compartment WHERE res_type = ? AND res_id = ? AND via = ''"), typ, id); err != nil {
		return err
	}
	if _, err := t.exec(ctx, db.q("DELETE FROM fhir_compartment WHERE via = ? AND via <> ''"), typ+"/"+id); err != nil {
		return err
	}
	b := &bulkRows{t: t, ctx: ctx}
	b.addIndex(rid, typ, id, ix)
	return b.flushAll()
}

func dedupe(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	n := 0
	for i, v := range out {
		if i == 0 || v != out[n-1] {
			out[n] = v
			n++
		}
	}
	return out[:n]
}

func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return "?" + strings.Repeat(", ?", n-1)
}
