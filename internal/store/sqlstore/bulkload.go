package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// bulkLoadCacheKiB is the SQLite writer's page cache during a bulk load.
const bulkLoadCacheKiB = 32 << 10

// deferredIndexes are the search tables' indexes that a bulk load into an
// empty FHIR store drops and builds at its end (ten: schema 11 dropped
// fhir_token_text, schema 16 added fhir_date_high). Each takes a load's rows
// at random places (a code, a reference's target, a date), so inserting
// them one by one reads and splits pages all over a growing index, while
// CREATE INDEX sorts every row once: on 48,668 seeded resources, 17.4 s
// with them against 8.8 s without plus 3.6 s to build them.
//
// What stays: the row-key indexes (<table>_rid), to which a load only
// appends, and which searches name (INDEXED BY); fhir_ref_rev, which
// _revinclude names; fhir_compartment_res, by which every access check and
// every update finds a resource's compartments. So a search running beside
// the load answers correctly, only slower, and nothing fails.
var deferredIndexes = []string{
	"fhir_token_code", "fhir_string_norm", "fhir_ref_target",
	"fhir_date_low", "fhir_date_high", "fhir_quantity_value", "fhir_number_value", "fhir_uri_value",
	"fhir_compartment_patient", "fhir_compartment_via",
}

// BeginBulkLoad readies the store for a bulk load (smartgate seed and
// import) and says whether the load defers the search indexes; the
// loader calls BuildDeferredIndexes when it ends, whatever the outcome.
//
// On SQLite the writer's page cache grows from the default 2 MiB to 32
// MiB: a load touches the same hot index pages in every batch, and with 2
// MiB it read them back from the file again and again (8 s of system time
// of 26 s, loading into a database of 100k resources). A server keeps the
// default: its writes are small, and every MiB is resident memory.
//
// When the FHIR store holds no resource yet, the indexes in
// deferredIndexes are dropped, in one transaction with a row each in
// fhir_deferred_indexes holding its CREATE statement. A store with
// resources loads with every index in place; one that an interrupted load
// left with unbuilt indexes gets them first. PostgreSQL loads with its
// indexes (several writers at once).
func (db *DB) BeginBulkLoad(ctx context.Context) (deferred bool, err error) {
	if db.postgres {
		return false, nil
	}
	if _, err := db.w.ExecContext(ctx, fmt.Sprintf("PRAGMA cache_size = -%d", bulkLoadCacheKiB)); err != nil {
		return false, err
	}
	if err := db.prepareBulk(ctx); err != nil {
		return false, err
	}
	err = db.tx(ctx, 0, func(tx *sql.Tx) error {
		var any int
		switch err := tx.QueryRowContext(ctx, "SELECT 1 FROM fhir_resources LIMIT 1").Scan(&any); {
		case err == nil:
			return nil // not empty
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		for _, name := range deferredIndexes {
			var def string
			switch err := tx.QueryRowContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", name).Scan(&def); {
			case errors.Is(err, sql.ErrNoRows):
				continue // deferred already, by a load that did not end
			case err != nil:
				return err
			}
			if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO fhir_deferred_indexes (name, sql) VALUES (?, ?)", name, def); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "DROP INDEX "+name); err != nil {
				return err
			}
		}
		deferred = true
		return nil
	})
	if err != nil || deferred {
		return deferred, err
	}
	_, err = db.BuildDeferredIndexes(ctx)
	return false, err
}

// BuildDeferredIndexes builds the indexes a bulk load deferred (none on
// PostgreSQL) and returns their names. Each is one transaction: its
// CREATE INDEX and the removal of its row, so that two processes building
// at once, or a build interrupted, leave every index either built or
// still listed. While one builds, the database's other writers wait (up
// to SQLite's busy timeout, 10 s, for another process's).
func (db *DB) BuildDeferredIndexes(ctx context.Context) ([]string, error) {
	if db.postgres {
		return nil, nil
	}
	names, err := db.DeferredIndexes(ctx)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, nil
	}
	// The sorts of CREATE INDEX on a second thread too: about a tenth
	// faster on two cores. Only for the build.
	if _, err := db.w.ExecContext(ctx, "PRAGMA threads = 2"); err != nil {
		return nil, err
	}
	defer db.w.ExecContext(context.WithoutCancel(ctx), "PRAGMA threads = 0")
	var built []string
	for _, name := range names {
		err := db.tx(ctx, 0, func(tx *sql.Tx) error {
			var def string
			switch err := tx.QueryRowContext(ctx, "SELECT sql FROM fhir_deferred_indexes WHERE name = ?", name).Scan(&def); {
			case errors.Is(err, sql.ErrNoRows):
				return nil // built meanwhile by another process
			case err != nil:
				return err
			}
			create, ok := strings.CutPrefix(def, "CREATE INDEX ")
			if !ok {
				return fmt.Errorf("deferred index %s: its definition does not start with CREATE INDEX", name)
			}
			if _, err := tx.ExecContext(ctx, "CREATE INDEX IF NOT EXISTS "+create); err != nil {
				return fmt.Errorf("building index %s: %w", name, err)
			}
			_, err := tx.ExecContext(ctx, "DELETE FROM fhir_deferred_indexes WHERE name = ?", name)
			return err
		})
		if err != nil {
			return built, err
		}
		built = append(built, name)
	}
	return built, nil
}

// DeferredIndexes returns the names of the indexes a bulk load deferred and
// nothing has built yet: a load running, or one that was interrupted.
func (db *DB) DeferredIndexes(ctx context.Context) ([]string, error) {
	if db.postgres {
		return nil, nil
	}
	rows, err := db.r.QueryContext(ctx, "SELECT name FROM fhir_deferred_indexes ORDER BY name")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// unhintedPause is how long searches go without index hints after SQLite
// said a hinted index is missing.
const unhintedPause = 5 * time.Second

// indexHints says whether searches may name their indexes (INDEXED BY,
// fhir_query.go): not for a while after one was missing.
func (db *DB) indexHints() bool {
	return time.Now().UnixNano() >= db.unhintedUntil.Load()
}

// unhintedIfMissing runs fn, a read that builds its SQL inside; when
// SQLite refuses it because an index it names does not exist (a bulk load
// in this process or another deferred it), it runs fn once more without
// hints, and the next reads go without them for unhintedPause. Unhinted,
// SQLite chooses the indexes itself: the same answers, slower.
func (db *DB) unhintedIfMissing(fn func() error) error {
	err := fn()
	if err != nil && !db.postgres && strings.Contains(err.Error(), "no such index") {
		db.unhintedUntil.Store(time.Now().Add(unhintedPause).UnixNano())
		err = fn()
	}
	return err
}

// prepareBulk prepares the bulk INSERTs on SQLite's writer, once: each
// transaction of a load then runs them (Tx.StmtContext finds them prepared
// on the writer's one connection) instead of parsing them again. It must
// run outside a transaction, which holds that connection.
func (db *DB) prepareBulk(ctx context.Context) error {
	if db.postgres || db.bulkStmts.Load() != nil {
		return nil
	}
	bs := new(bulkStmts)
	for t := range bulkTables {
		if t == historyTable {
			continue // SQLite copies history rows with INSERT ... SELECT
		}
		for k, n := range bulkSizes {
			st, err := db.w.PrepareContext(ctx, db.insertRows(t, n))
			if err != nil {
				bs.close()
				return err
			}
			bs[t][k] = st
		}
	}
	if !db.bulkStmts.CompareAndSwap(nil, bs) {
		bs.close()
	}
	return nil
}
