package admin

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// AuditQuery selects audit events. Empty fields do not filter.
type AuditQuery struct {
	// Actor is an audit actor ("user:<id>", "client:<id>", "cli",
	// "system", "address:<ip>"), or a username or client id, which is
	// resolved to its actor.
	Actor string
	// Client is a client id: events about that app.
	Client string
	// Patient is a patient's FHIR id or Patient/<id>.
	Patient string
	// Action is an action ("token.issue") or a family ("client.*").
	Action  string
	Outcome string
	// Since and Until bound the event time: Since <= time < Until.
	Since, Until time.Time
	// Limit is the page size: 1 to 1000, default 100.
	Limit int
	// Cursor continues a listing from the previous page's Next.
	Cursor string
}

// AuditEvent is one audit event as the API and CSV export show it.
type AuditEvent struct {
	ID        int64     `json:"id"`
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id,omitempty"`
	Actor     string    `json:"actor"`
	ClientID  string    `json:"client_id,omitempty"`
	Patient   string    `json:"patient,omitempty"`
	Action    string    `json:"action"`
	Outcome   string    `json:"outcome"`
	Detail    string    `json:"detail"` // a JSON object
}

// AuditPage is one page of events, newest first, and the cursor of the
// next page ("" on the last).
type AuditPage struct {
	Events []AuditEvent `json:"events"`
	Next   string       `json:"next,omitempty"`
}

// ParseAuditQuery reads a query from URL parameters: actor, client,
// patient, action, outcome, since, until (RFC 3339 times or dates), limit,
// cursor. Errors name the parameter.
func ParseAuditQuery(v url.Values) (AuditQuery, error) {
	q := AuditQuery{Actor: strings.TrimSpace(v.Get("actor")), Client: strings.TrimSpace(v.Get("client")), Patient: strings.TrimSpace(v.Get("patient")),
		Action: strings.TrimSpace(v.Get("action")), Outcome: strings.TrimSpace(v.Get("outcome")), Cursor: v.Get("cursor")}
	var err error
	if q.Since, err = parseTime("since", v.Get("since"), false); err != nil {
		return q, err
	}
	if q.Until, err = parseTime("until", v.Get("until"), true); err != nil {
		return q, err
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return q, problem.New(problem.InvalidRequest, "limit %q must be a whole number from 1 to 1000", l)
		}
		q.Limit = n
	}
	switch q.Outcome {
	case "", "success", "failure":
	default:
		return q, problem.New(problem.InvalidRequest, "outcome %q must be success or failure", q.Outcome)
	}
	return q, nil
}

// parseTime reads an RFC 3339 time, a local-looking "2006-01-02T15:04"
// (UTC, as an HTML datetime-local field sends it) or a date. A date as an
// upper bound means the end of that day.
func parseTime(name, s string, end bool) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		if end {
			t = t.Add(24 * time.Hour)
		}
		return t, nil
	}
	return time.Time{}, problem.New(problem.InvalidRequest, "%s %q is not a time; write it like 2026-11-04, 2026-11-04T09:30 (UTC) or 2026-11-04T09:30:00Z", name, s)
}

// Values writes the query back as URL parameters (without the cursor).
func (q AuditQuery) Values() url.Values {
	v := url.Values{}
	for k, x := range map[string]string{"actor": q.Actor, "client": q.Client, "patient": q.Patient, "action": q.Action, "outcome": q.Outcome} {
		if x != "" {
			v.Set(k, x)
		}
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.Format(time.RFC3339))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// filter turns a query into a store filter, resolving a username or
// client id given as the actor.
func (s *Service) filter(ctx context.Context, q AuditQuery) (store.AuditFilter, error) {
	f := store.AuditFilter{Actor: q.Actor, ClientID: q.Client, Patient: q.Patient, Action: q.Action, Outcome: q.Outcome, Since: q.Since, Until: q.Until, Limit: q.Limit}
	if f.Limit == 0 {
		f.Limit = 100
	}
	if id, ok := strings.CutPrefix(f.Patient, "Patient/"); ok {
		f.Patient = id
	}
	if a := f.Actor; a != "" && !strings.Contains(a, ":") && a != "cli" && a != "system" {
		if u, err := s.d.Store.GetUserByUsername(ctx, a); err == nil {
			f.Actor = "user:" + u.ID
		} else if _, err := s.d.Store.GetClient(ctx, a); err == nil {
			f.Actor = "client:" + a
		} else {
			return f, problem.New(problem.InvalidRequest, "actor %q is neither a username nor a client id; give an actor as the audit log writes it (user:<id>, client:<id>, cli, system)", a)
		}
	}
	if q.Cursor != "" {
		at, id, ok := strings.Cut(q.Cursor, ".")
		us, err1 := strconv.ParseInt(at, 10, 64)
		n, err2 := strconv.ParseInt(id, 10, 64)
		if !ok || err1 != nil || err2 != nil || n <= 0 {
			return f, problem.New(problem.InvalidRequest, "cursor %q is not one this server gave; use the next value of the previous page as it is", q.Cursor)
		}
		f.BeforeTime, f.BeforeID = time.UnixMicro(us).UTC(), n
	}
	return f, nil
}

func cursorOf(e store.AuditEvent) string {
	return strconv.FormatInt(e.Time.UnixMicro(), 10) + "." + strconv.FormatInt(e.ID, 10)
}

// Audit returns one page of matching events, newest first.
func (s *Service) Audit(ctx context.Context, q AuditQuery) (AuditPage, error) {
	f, err := s.filter(ctx, q)
	if err != nil {
		return AuditPage{}, err
	}
	es, err := s.d.Store.ListAudit(ctx, f)
	if err != nil {
		return AuditPage{}, err
	}
	page := AuditPage{Events: make([]AuditEvent, 0, len(es))}
	for _, e := range es {
		page.Events = append(page.Events, auditOf(e))
	}
	if len(es) == f.Limit {
		page.Next = cursorOf(es[len(es)-1])
	}
	return page, nil
}

func auditOf(e store.AuditEvent) AuditEvent {
	return AuditEvent{ID: e.ID, Time: e.Time, RequestID: e.RequestID, Actor: e.Actor, ClientID: e.ClientID, Patient: e.Patient, Action: e.Action, Outcome: e.Outcome, Detail: e.Detail}
}

// MaxExport bounds the rows of one CSV export.
const MaxExport = 100_000

// ExportAudit writes every matching event as CSV (RFC 4180), newest
// first, with a header row, at most MaxExport rows; it reports whether
// the export was cut short.
func (s *Service) ExportAudit(ctx context.Context, w io.Writer, q AuditQuery) (truncated bool, err error) {
	q.Limit = 1000
	f, err := s.filter(ctx, q)
	if err != nil {
		return false, err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"id", "time", "actor", "client_id", "patient", "action", "outcome", "request_id", "detail"}); err != nil {
		return false, err
	}
	n := 0
	for {
		es, err := s.d.Store.ListAudit(ctx, f)
		if err != nil {
			return false, err
		}
		for _, e := range es {
			if n == MaxExport {
				cw.Flush()
				return true, cw.Error()
			}
			n++
			if err := cw.Write([]string{strconv.FormatInt(e.ID, 10), e.Time.Format(time.RFC3339Nano), csvSafe(e.Actor), csvSafe(e.ClientID), csvSafe(e.Patient),
				csvSafe(e.Action), e.Outcome, csvSafe(e.RequestID), csvSafe(e.Detail)}); err != nil {
				return false, err
			}
		}
		if len(es) < f.Limit {
			break
		}
		last := es[len(es)-1]
		f.BeforeTime, f.BeforeID = last.Time, last.ID
	}
	cw.Flush()
	return false, cw.Error()
}

// csvSafe keeps a cell from being read as a formula by a spreadsheet
// (CSV injection): client ids and details come from outside.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func itoa(n int) string { return fmt.Sprint(n) }
