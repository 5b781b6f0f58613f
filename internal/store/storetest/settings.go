package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"smartgate/internal/store"
)

func adminTests() []struct {
	name string
	fn   func(t *testing.T, b Backend)
} {
	return []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"Settings", testSettings},
		{"AuditPaging", testAuditPaging},
		{"AuditActionPrefix", testAuditActionPrefix},
		{"ListLoginSessions", testListLoginSessions},
	}
}

// testSettings: put, replace, list by key, delete, and a change on topic
// "settings" for every write, seen by another handle.
func testSettings(t *testing.T, b Backend) {
	s, dsn := migrated(t, b)
	c := ctx(t)
	other := b.Open(t, dsn)
	if got, err := s.ListSettings(c); err != nil || len(got) != 0 {
		t.Fatalf("ListSettings on a fresh database = %v, %v; want none", got, err)
	}
	start, err := s.LatestChange(c)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC)
	for _, st := range []store.Setting{
		{Key: "tokens.access_token_ttl", Value: "30m", UpdatedAt: t0, UpdatedBy: "user:u1"},
		{Key: "registration.policy", Value: "open", UpdatedAt: t0, UpdatedBy: "user:u1"},
		{Key: "tokens.access_token_ttl", Value: "20m", UpdatedAt: t0.Add(time.Minute), UpdatedBy: "client:adm"},
	} {
		if err := s.PutSetting(c, st); err != nil {
			t.Fatalf("PutSetting(%s=%s): %v", st.Key, st.Value, err)
		}
	}
	want := []store.Setting{
		{Key: "registration.policy", Value: "open", UpdatedAt: t0, UpdatedBy: "user:u1"},
		{Key: "tokens.access_token_ttl", Value: "20m", UpdatedAt: t0.Add(time.Minute), UpdatedBy: "client:adm"},
	}
	got, err := other.ListSettings(c)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ListSettings from another handle (-want +got):\n%s", d)
	}
	if err := s.DeleteSetting(c, "registration.policy"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSetting(c, "registration.policy"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting twice = %v, want ErrNotFound", err)
	}
	if got, _ := s.ListSettings(c); len(got) != 1 || got[0].Key != "tokens.access_token_ttl" {
		t.Errorf("after delete: %+v, want only tokens.access_token_ttl", got)
	}
	cs, err := other.ChangesSince(c, start, 100)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, ch := range cs {
		if ch.Topic == "settings" {
			keys = append(keys, ch.Key)
		}
	}
	wantKeys := []string{"tokens.access_token_ttl", "registration.policy", "tokens.access_token_ttl", "registration.policy"}
	if d := cmp.Diff(wantKeys, keys); d != "" {
		t.Errorf("settings changes recorded (-want +got):\n%s", d)
	}
}

// testAuditPaging walks the whole list page by page with the keyset
// cursor, including events that share a timestamp, and checks that every
// event comes exactly once, in order, and that filters hold across pages.
func testAuditPaging(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	t0 := time.Date(2026, 11, 4, 12, 0, 0, 0, time.UTC)
	var batch []store.AuditEvent
	for i := 0; i < 25; i++ {
		batch = append(batch, store.AuditEvent{
			// Three events per second: ties the cursor must break by id.
			Time: t0.Add(time.Duration(i/3) * time.Second), RequestID: fmt.Sprint("r", i),
			Actor: []string{"user:alice", "client:lab"}[i%2], ClientID: "app", Action: "token.issue", Outcome: "success", Detail: "{}",
		})
	}
	if err := s.AppendAudit(c, batch); err != nil {
		t.Fatal(err)
	}
	for _, f := range []store.AuditFilter{{Limit: 4}, {Limit: 3, Actor: "user:alice"}, {Limit: 7, Since: t0.Add(2 * time.Second)}} {
		all, err := s.ListAudit(c, store.AuditFilter{Actor: f.Actor, Since: f.Since, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var paged []store.AuditEvent
		cur := f
		for pages := 0; ; pages++ {
			if pages > 30 {
				t.Fatalf("filter %+v: paging does not end", f)
			}
			page, err := s.ListAudit(c, cur)
			if err != nil {
				t.Fatal(err)
			}
			paged = append(paged, page...)
			if len(page) < f.Limit {
				break
			}
			last := page[len(page)-1]
			cur.BeforeTime, cur.BeforeID = last.Time, last.ID
		}
		var want, got []string
		for _, e := range all {
			want = append(want, e.RequestID)
		}
		for _, e := range paged {
			got = append(got, e.RequestID)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("filter %+v: pages joined differ from one query (-want +got):\n%s", f, d)
		}
	}
}

func testAuditActionPrefix(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	t0 := time.Date(2026, 11, 5, 12, 0, 0, 0, time.UTC)
	var batch []store.AuditEvent
	for i, a := range []string{"client.enable", "client.rotate_secret", "clientx.other", "client_enable", "user.create", "client.disable"} {
		batch = append(batch, store.AuditEvent{Time: t0.Add(time.Duration(i) * time.Second), Actor: "user:adm", Action: a, Outcome: "success", Detail: "{}"})
	}
	if err := s.AppendAudit(c, batch); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListAudit(c, store.AuditFilter{Action: "client.*"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range got {
		actions = append(actions, e.Action)
	}
	if d := cmp.Diff([]string{"client.disable", "client.rotate_secret", "client.enable"}, actions); d != "" {
		t.Errorf("Action client.* (-want +got):\n%s", d)
	}
	exact, _ := s.ListAudit(c, store.AuditFilter{Action: "client.enable"})
	if len(exact) != 1 {
		t.Errorf("Action client.enable matched %d events, want 1", len(exact))
	}
}

func testListLoginSessions(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	now := time.Date(2026, 11, 6, 10, 0, 0, 0, time.UTC)
	mk := func(id, user string, created, expires time.Time) store.LoginSession {
		return store.LoginSession{IDHash: hash(id), UserID: user, AuthTime: created, AMR: []string{"pwd"}, CreatedAt: created, ExpiresAt: expires}
	}
	for _, x := range []store.LoginSession{
		mk("a", "u1", now.Add(-2*time.Hour), now.Add(time.Hour)),
		mk("b", "u1", now.Add(-time.Hour), now.Add(2*time.Hour)),
		mk("expired", "u1", now.Add(-3*time.Hour), now.Add(-time.Minute)),
		mk("revoked", "u1", now.Add(-time.Minute), now.Add(time.Hour)),
		mk("other", "u2", now, now.Add(time.Hour)),
	} {
		if err := s.CreateLoginSession(c, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeLoginSession(c, hash("revoked"), now); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListLoginSessions(c, "u1", now)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.LoginSession{mk("b", "u1", now.Add(-time.Hour), now.Add(2*time.Hour)), mk("a", "u1", now.Add(-2*time.Hour), now.Add(time.Hour))}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ListLoginSessions(u1) (-want +got):\n%s", d)
	}
	if got, _ := s.ListLoginSessions(c, "nobody", now); len(got) != 0 {
		t.Errorf("ListLoginSessions(nobody) = %v, want none", got)
	}
}
