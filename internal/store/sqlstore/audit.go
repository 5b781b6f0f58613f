package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"smartgate/internal/store"
)

// auditChunk is the rows per INSERT: 8 parameters each, well within both
// engines' limits (SQLite 32766, PostgreSQL 65535).
const auditChunk = 500

// AppendAudit implements store.Audit: the whole batch in one transaction,
// one multi-row INSERT per chunk (one round trip instead of one per event).
func (db *DB) AppendAudit(ctx context.Context, events []store.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	err := db.txOn(ctx, db.a, 0, func(tx *sql.Tx) error {
		for start := 0; start < len(events); start += auditChunk {
			chunk := events[start:min(start+auditChunk, len(events))]
			var q strings.Builder
			q.WriteString("INSERT INTO audit_events (at, request_id, actor, client_id, patient, action, outcome, detail) VALUES ")
			args := make([]any, 0, len(chunk)*8)
			for i, e := range chunk {
				if i > 0 {
					q.WriteByte(',')
				}
				q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
				args = append(args, micros(e.Time), e.RequestID, e.Actor, e.ClientID, e.Patient, e.Action, e.Outcome, e.Detail)
			}
			if _, err := tx.ExecContext(ctx, db.q(q.String()), args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || db.postgres {
		return err
	}
	// The bulk indexes, in a transaction of their own: the batch is
	// written whatever happens to them. One that fails leaves the events
	// after the mark, which ListAudit finds by id, to the next one.
	if now := time.Now().UnixNano(); now-db.auditIndexed.Load() >= int64(auditBulkEvery) {
		if db.txOn(ctx, db.a, 0, func(tx *sql.Tx) error { return indexAuditBulk(ctx, tx) }) == nil {
			db.auditIndexed.Store(now)
		}
	}
	return nil
}

// ListAudit implements store.Audit: newest first by (at, id), which is
// also the keyset the Before fields page by.
func (db *DB) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	var where []string
	var args []any
	action := f.Action
	if prefix, ok := strings.CutSuffix(action, ".*"); ok && prefix != "" {
		// substr, not LIKE: action names hold "_", a LIKE wildcard.
		where = append(where, "substr(e.action, 1, ?) = ?")
		args = append(args, len(prefix)+1, prefix+".")
		action = ""
	}
	for _, c := range []struct{ col, val string }{
		{"actor", f.Actor}, {"client_id", f.ClientID}, {"patient", f.Patient}, {"action", action}, {"outcome", f.Outcome},
	} {
		if c.val != "" {
			where = append(where, "e."+c.col+" = ?")
			args = append(args, c.val)
		}
	}
	if f.BeforeID != 0 {
		where = append(where, "(e.at < ? OR (e.at = ? AND e.id < ?))")
		args = append(args, micros(f.BeforeTime), micros(f.BeforeTime), f.BeforeID)
	}
	if !f.Since.IsZero() {
		where = append(where, "e.at >= ?")
		args = append(args, micros(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "e.at < ?")
		args = append(args, micros(f.Until))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	from := "audit_events e"
	var fromArgs []any
	if !db.postgres {
		// A patient's or an actor's events: those its bulk index holds,
		// and those after the mark (the last few seconds'), by id; then
		// each row. (Given only the filter, SQLite walks audit_events_at
		// for the ORDER BY and reads every event.)
		for _, c := range []struct{ col, val string }{{"patient", f.Patient}, {"actor", f.Actor}} {
			if c.val == "" {
				continue
			}
			from = "(SELECT id FROM audit_" + c.col + " WHERE " + c.col + " = ? UNION ALL" +
				" SELECT id FROM audit_events WHERE id > (SELECT id FROM audit_indexed_upto) AND " + c.col + " = ?) k" +
				" CROSS JOIN audit_events e ON e.id = k.id"
			fromArgs = []any{c.val, c.val}
			break
		}
	}
	q := "SELECT e.id, e.at, e.request_id, e.actor, e.client_id, e.patient, e.action, e.outcome, e.detail FROM " + from
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY e.at DESC, e.id DESC LIMIT ?"
	args = append(append(fromArgs, args...), limit)
	rows, err := db.a.QueryContext(ctx, db.q(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		var e store.AuditEvent
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.RequestID, &e.Actor, &e.ClientID, &e.Patient, &e.Action, &e.Outcome, &e.Detail); err != nil {
			return nil, err
		}
		e.Time = fromMicros(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
