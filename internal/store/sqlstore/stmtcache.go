package sqlstore

import (
	"container/list"
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps the statements most recently run on SQLite's readers
// prepared. modernc.org/sqlite keeps no statement cache, so a FHIR search
// parsed and planned its SQL on every request: with a few probes per
// candidate row that was about a third of a patient search's CPU. The
// searches of one kind share their SQL (the values are bound), so a few
// hundred statements cover a server's traffic; database/sql prepares each
// once per reader connection. PostgreSQL's driver, pgx, caches prepared
// statements itself.
type stmtCache struct {
	db  *sql.DB
	max int

	mu sync.Mutex
	m  map[string]*list.Element // query -> element of l holding *cached
	l  *list.List               // most recently used first
}

type cached struct {
	query string
	stmt  *sql.Stmt
}

func newStmtCache(db *sql.DB, max int) *stmtCache {
	return &stmtCache{db: db, max: max, m: map[string]*list.Element{}, l: list.New()}
}

// get returns query prepared, preparing it on first use and closing the
// least recently used statement beyond max (a statement in use by open
// rows is finalised when they close: database/sql tracks that).
func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	if e, ok := c.m[query]; ok {
		c.l.MoveToFront(e)
		st := e.Value.(*cached).stmt
		c.mu.Unlock()
		return st, nil
	}
	c.mu.Unlock()
	// Prepared outside the lock (it may wait for a connection); a racing
	// caller's statement for the same query is closed below.
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[query]; ok {
		st.Close()
		c.l.MoveToFront(e)
		return e.Value.(*cached).stmt, nil
	}
	c.m[query] = c.l.PushFront(&cached{query, st})
	for c.l.Len() > c.max {
		old := c.l.Remove(c.l.Back()).(*cached)
		delete(c.m, old.query)
		old.stmt.Close()
	}
	return st, nil
}

// close closes every cached statement.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for e := c.l.Front(); e != nil; e = e.Next() {
		if err := e.Value.(*cached).stmt.Close(); err != nil && first == nil {
			first = err
		}
	}
	c.m, c.l = map[string]*list.Element{}, list.New()
	return first
}

// cachedReaders is the readers as a querier whose queries go through the
// statement cache (SQLite); a query that cannot be prepared runs as is,
// so that its error is the one the caller would have had.
type cachedReaders struct{ db *DB }

func (q cachedReaders) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return q.db.r.ExecContext(ctx, query, args...)
}

func (q cachedReaders) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := q.db.readStmts.get(ctx, query)
	if err != nil {
		return q.db.r.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}

func (q cachedReaders) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := q.db.readStmts.get(ctx, query)
	if err != nil {
		return q.db.r.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// readers is the querier for reads outside a transaction: the statement
// cache on SQLite, the pool itself on PostgreSQL.
func (db *DB) readers() querier {
	if db.readStmts == nil {
		return db.r
	}
	return cachedReaders{db}
}
