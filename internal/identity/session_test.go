package identity

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"smartgate/internal/store"
)

func TestSessions(t *testing.T) {
	f := newFixture(t, nil) // login.session_ttl 1h
	c := ctx(t)
	u := f.user(t, "ines", store.RolePractitioner, "")
	l, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	f.clk.add(time.Second)
	id, sess, err := f.svc.CreateSession(c, l)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(id); err != nil || len(raw) != 32 {
		t.Errorf("session id %q is not 32 random bytes in base64url", id)
	}
	stored, err := f.st.GetLoginSession(c, SessionHash(id))
	if err != nil || !bytes.Equal(stored.IDHash, SessionHash(id)) || bytes.Contains(stored.IDHash, []byte(id)) {
		t.Fatalf("stored session %+v, %v", stored, err)
	}
	if !stored.AuthTime.Equal(l.AuthTime) || !stored.ExpiresAt.Equal(f.clk.now().Add(time.Hour)) || stored.UserID != u.ID || len(stored.AMR) != 1 {
		t.Errorf("stored session %+v; want auth_time of the login, expiry now + 1h", stored)
	}
	if ref := SessionRef(sess.IDHash); len(ref) != 32 {
		t.Errorf("SessionRef = %q", ref)
	}
	got, gu, err := f.svc.LookupSession(c, id)
	if err != nil || gu.ID != u.ID || !got.ExpiresAt.Equal(sess.ExpiresAt) {
		t.Errorf("LookupSession = %+v %s, %v", got, gu.ID, err)
	}
	for _, bad := range []string{"", "nope", id + "x", string(make([]byte, 200))} {
		if _, _, err := f.svc.LookupSession(c, bad); !errors.Is(err, ErrNoSession) {
			t.Errorf("LookupSession(%q) = %v, want ErrNoSession", bad, err)
		}
	}
	f.clk.add(time.Hour)
	if _, _, err := f.svc.LookupSession(c, id); !errors.Is(err, ErrNoSession) {
		t.Errorf("expired session: %v, want ErrNoSession", err)
	}
	id2, _, _ := f.svc.CreateSession(c, l)
	id3, _, _ := f.svc.CreateSession(c, l)
	if err := f.svc.RevokeSession(c, id2); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.RevokeSession(c, "unknown"); err != nil {
		t.Errorf("RevokeSession(unknown) = %v, want nil", err)
	}
	if _, _, err := f.svc.LookupSession(c, id2); !errors.Is(err, ErrNoSession) {
		t.Errorf("revoked session: %v", err)
	}
	if _, _, err := f.svc.LookupSession(c, id3); err != nil {
		t.Errorf("another session died with the revoked one: %v", err)
	}
	if n, err := f.svc.RevokeUserSessions(c, u.ID); err != nil || n != 1 {
		t.Errorf("RevokeUserSessions = %d, %v; want 1", n, err)
	}
	if _, _, err := f.svc.LookupSession(c, id3); !errors.Is(err, ErrNoSession) {
		t.Errorf("session after RevokeUserSessions: %v", err)
	}
	f.clk.add(2 * time.Hour)
	if err := f.svc.Prune(c); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.GetLoginSession(c, SessionHash(id)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired session not pruned: %v", err)
	}
}
