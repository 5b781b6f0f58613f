package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	_ "modernc.org/sqlite"
)

// TestStmtCache: statements are prepared once and reused, the least
// recently used beyond the bound are closed (rows still open on one finish
// normally), and concurrent callers of one query share its statement.
func TestStmtCache(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (a INTEGER)"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := db.Exec("INSERT INTO t VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
	}
	c := newStmtCache(db, 2)
	q := func(n int) string { return fmt.Sprintf("SELECT a FROM t WHERE a >= ? /* %d */", n) }
	s1, err := c.get(ctx, q(1))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := c.get(ctx, q(1))
	if again != s1 {
		t.Error("the same query was prepared twice")
	}
	// Rows open on s1 while it is evicted still read to the end.
	rows, err := s1.QueryContext(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.get(ctx, q(2))
	c.get(ctx, q(3)) // evicts q(1), the least recently used
	if _, ok := c.m[q(1)]; ok || c.l.Len() != 2 {
		t.Errorf("after 3 queries with room for 2: q(1) kept %v, %d cached", ok, c.l.Len())
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil || n != 10 {
		t.Errorf("rows of an evicted statement: %d rows, %v", n, err)
	}
	rows.Close()
	if _, err := s1.QueryContext(ctx, 0); err == nil {
		t.Error("the evicted statement was not closed")
	}
	// Many goroutines, one query: one statement.
	var wg sync.WaitGroup
	got := make([]*sql.Stmt, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = c.get(ctx, q(9))
		}()
	}
	wg.Wait()
	for _, s := range got {
		if s == nil || s != got[0] {
			t.Fatal("concurrent callers got different statements for one query")
		}
	}
	var a int
	if err := got[0].QueryRowContext(ctx, 9).Scan(&a); err != nil || a != 9 {
		t.Errorf("cached statement: %d %v", a, err)
	}
	if err := c.close(); err != nil || c.l.Len() != 0 {
		t.Errorf("close: %v, %d left", err, c.l.Len())
	}
}
