package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"smartgate/internal/store"
)

func usersTests() []struct {
	name string
	fn   func(t *testing.T, b Backend)
} {
	return []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"UsersCRUD", testUsersCRUD},
		{"UsersUpdateRollback", testUsersUpdateRollback},
		{"UsersUpdateSerialized", testUsersUpdateSerialized},
		{"UserLinks", testUserLinks},
		{"LoginSessions", testLoginSessions},
		{"ThrottleConcurrentNoLostUpdates", testThrottleConcurrent},
		{"ThrottleResetAndPrune", testThrottleReset},
	}
}

func sampleUser(id, username string) store.User {
	t0 := time.Date(2026, 11, 2, 9, 30, 0, 123000, time.UTC)
	return store.User{
		ID: id, Username: username, Role: store.RolePractitioner, FHIRUser: "Practitioner/" + id,
		Status: store.UserEnabled, PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
		TOTPSecretEnc: []byte{1, 2, 3, 0, 255}, TOTPKEKID: "kek1", TOTPEnabled: true, TOTPLastStep: 59000000,
		CreatedAt: t0, UpdatedAt: t0,
	}
}

func testUsersCRUD(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	want := sampleUser("u1", "Ines.Munoz")
	before, _ := s.LatestChange(c)
	if err := s.CreateUser(c, want); err != nil {
		t.Fatal(err)
	}
	if after, _ := s.LatestChange(c); after != before+1 {
		t.Errorf("CreateUser recorded %d changes, want 1", after-before)
	}
	for _, dup := range []store.User{sampleUser("u1", "someone-else"), sampleUser("u2", "ines.munoz"), sampleUser("u3", "INES.MUNOZ")} {
		if err := s.CreateUser(c, dup); !errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateUser(id %s, username %s) beside u1/Ines.Munoz = %v, want ErrConflict", dup.ID, dup.Username, err)
		}
	}
	got, err := s.GetUser(c, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("GetUser (-want +got):\n%s", d)
	}
	for _, name := range []string{"Ines.Munoz", "ines.munoz", "INES.MUNOZ"} {
		if got, err := s.GetUserByUsername(c, name); err != nil || got.ID != "u1" || got.Username != "Ines.Munoz" {
			t.Errorf("GetUserByUsername(%q) = %s %q, %v; want u1 with its spelling kept", name, got.ID, got.Username, err)
		}
	}
	if _, err := s.GetUser(c, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetUserByUsername(c, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUserByUsername(unknown) = %v, want ErrNotFound", err)
	}
	// A user with no TOTP and no password (federated only).
	plain := store.User{ID: "u2", Username: "amy", Role: store.RolePatient, FHIRUser: "Patient/p1", Status: store.UserEnabled,
		CreatedAt: want.CreatedAt, UpdatedAt: want.UpdatedAt}
	if err := s.CreateUser(c, plain); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetUser(c, "u2"); !cmp.Equal(plain, got) {
		t.Errorf("GetUser(u2) (-want +got):\n%s", cmp.Diff(plain, got))
	}
	list, err := s.ListUsers(c)
	if err != nil || len(list) != 2 || list[0].ID != "u2" || list[1].ID != "u1" {
		t.Fatalf("ListUsers = %v, %v; want u2 (amy) then u1 (Ines.Munoz), by username", list, err)
	}
	login := want.CreatedAt.Add(time.Hour)
	before, _ = s.LatestChange(c)
	err = s.UpdateUser(c, "u2", func(u *store.User) error {
		u.Username = "Amy.Shaw"
		u.Status = store.UserDisabled
		u.LastLoginAt = login
		u.ID = "ignored"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := s.LatestChange(c); after != before+1 {
		t.Errorf("UpdateUser recorded %d changes, want 1", after-before)
	}
	got, _ = s.GetUserByUsername(c, "amy.shaw")
	if got.ID != "u2" || got.Status != store.UserDisabled || !got.LastLoginAt.Equal(login) {
		t.Errorf("after update: %+v", got)
	}
	if _, err := s.GetUserByUsername(c, "amy"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the old username still finds the renamed user: %v", err)
	}
	err = s.UpdateUser(c, "u2", func(u *store.User) error { u.Username = "ines.MUNOZ"; return nil })
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("renaming to a taken username (other case) = %v, want ErrConflict", err)
	}
	// Changing only the case of one's own name is allowed.
	if err := s.UpdateUser(c, "u1", func(u *store.User) error { u.Username = "ines.munoz"; return nil }); err != nil {
		t.Errorf("changing the case of one's own username: %v", err)
	}
	if err := s.UpdateUser(c, "nope", func(*store.User) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateUser(unknown) = %v, want ErrNotFound", err)
	}
}

func testUsersUpdateRollback(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	if err := s.CreateUser(c, sampleUser("u1", "ines")); err != nil {
		t.Fatal(err)
	}
	before, _ := s.LatestChange(c)
	boom := errors.New("refused")
	err := s.UpdateUser(c, "u1", func(u *store.User) error {
		u.Status = store.UserDisabled
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateUser = %v, want the updater's error", err)
	}
	if got, _ := s.GetUser(c, "u1"); got.Status != store.UserEnabled {
		t.Errorf("a failed update changed the status to %s", got.Status)
	}
	if after, _ := s.LatestChange(c); after != before {
		t.Errorf("a failed update recorded a change")
	}
}

// testUsersUpdateSerialized: updates of one user from several handles run
// one after the other, so a check-and-set in the updater (TOTP replay
// protection) accepts a time step once and increments are never lost.
func testUsersUpdateSerialized(t *testing.T, b Backend) {
	s, dsn := migrated(t, b)
	c := ctx(t)
	u := sampleUser("u1", "ines")
	u.TOTPLastStep = 0
	if err := s.CreateUser(c, u); err != nil {
		t.Fatal(err)
	}
	handles := []store.Store{s, b.Open(t, dsn), b.Open(t, dsn)}
	replayed := errors.New("step used")
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for _, h := range handles {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := h.UpdateUser(c, "u1", func(u *store.User) error {
					if u.TOTPLastStep >= 1000 {
						return replayed
					}
					u.TOTPLastStep = 1000
					return nil
				})
				switch {
				case err == nil:
					mu.Lock()
					accepted++
					mu.Unlock()
				case !errors.Is(err, replayed):
					t.Errorf("UpdateUser: %v", err)
				}
			}()
		}
	}
	wg.Wait()
	if accepted != 1 {
		t.Errorf("one TOTP step was accepted %d times by concurrent updates, want exactly once", accepted)
	}
	// Increments from every handle at once: none lost.
	const per = 5
	for _, h := range handles {
		for range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := h.UpdateUser(c, "u1", func(u *store.User) error { u.TOTPLastStep++; return nil }); err != nil {
					t.Errorf("UpdateUser: %v", err)
				}
			}()
		}
	}
	wg.Wait()
	if got, _ := s.GetUser(c, "u1"); got.TOTPLastStep != 1000+int64(len(handles)*per) {
		t.Errorf("after %d concurrent increments the counter is %d, want %d (lost updates)", len(handles)*per, got.TOTPLastStep-1000, len(handles)*per)
	}
}

func testUserLinks(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	for _, u := range []store.User{sampleUser("u1", "ines"), sampleUser("u2", "amy")} {
		if err := s.CreateUser(c, u); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := s.LatestChange(c)
	links := []store.UserLink{
		{UserID: "u1", Provider: "keycloak", Subject: "f3a1", CreatedAt: now},
		{UserID: "u1", Provider: "azure", Subject: "F3A1", CreatedAt: now},
		{UserID: "u2", Provider: "keycloak", Subject: "F3A1", CreatedAt: now}, // subjects are case-sensitive
	}
	for _, l := range links {
		if err := s.LinkUser(c, l); err != nil {
			t.Fatalf("LinkUser(%+v): %v", l, err)
		}
	}
	if after, _ := s.LatestChange(c); after != before+3 {
		t.Errorf("3 links recorded %d changes, want 3", after-before)
	}
	if err := s.LinkUser(c, store.UserLink{UserID: "u2", Provider: "keycloak", Subject: "f3a1", CreatedAt: now}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("linking a (provider, subject) linked already = %v, want ErrConflict", err)
	}
	if err := s.LinkUser(c, store.UserLink{UserID: "nope", Provider: "keycloak", Subject: "x", CreatedAt: now}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("linking an unknown user = %v, want ErrNotFound", err)
	}
	for _, tc := range []struct{ provider, subject, want string }{{"keycloak", "f3a1", "u1"}, {"keycloak", "F3A1", "u2"}, {"azure", "F3A1", "u1"}} {
		if u, err := s.UserByLink(c, tc.provider, tc.subject); err != nil || u.ID != tc.want {
			t.Errorf("UserByLink(%s, %s) = %s, %v; want %s", tc.provider, tc.subject, u.ID, err, tc.want)
		}
	}
	if _, err := s.UserByLink(c, "azure", "f3a1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByLink(unlinked) = %v, want ErrNotFound", err)
	}
	got, err := s.ListUserLinks(c, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]store.UserLink{links[1], links[0]}, got); d != "" {
		t.Errorf("ListUserLinks(u1) (-want +got):\n%s", d)
	}
	if err := s.UnlinkUser(c, "keycloak", "f3a1"); err != nil {
		t.Fatal(err)
	}
	if err := s.UnlinkUser(c, "keycloak", "f3a1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second UnlinkUser = %v, want ErrNotFound", err)
	}
	if got, _ := s.ListUserLinks(c, "u1"); len(got) != 1 || got[0].Provider != "azure" {
		t.Errorf("links after unlink: %+v", got)
	}
}

func testLoginSessions(t *testing.T, b Backend) {
	s, dsn := migrated(t, b)
	c := ctx(t)
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	sess := func(id, user string, expires time.Time) store.LoginSession {
		return store.LoginSession{IDHash: hash(id), UserID: user, AuthTime: now, AMR: []string{"pwd", "otp", "mfa"}, CreatedAt: now, ExpiresAt: expires}
	}
	want := sess("s1", "u1", now.Add(8*time.Hour))
	for _, x := range []store.LoginSession{want, sess("s2", "u1", now.Add(time.Hour)), sess("s3", "u2", now.Add(time.Hour)), sess("old", "u1", now.Add(-time.Hour))} {
		if err := s.CreateLoginSession(c, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateLoginSession(c, want); !errors.Is(err, store.ErrConflict) {
		t.Errorf("repeated session hash = %v, want ErrConflict", err)
	}
	got, err := b.Open(t, dsn).GetLoginSession(c, hash("s1"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("GetLoginSession (-want +got):\n%s", d)
	}
	if _, err := s.GetLoginSession(c, hash("nope")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetLoginSession(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.RevokeLoginSession(c, hash("s2"), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeLoginSession(c, hash("s2"), now.Add(2*time.Minute)); err != nil {
		t.Errorf("revoking twice: %v", err)
	}
	if got, _ := s.GetLoginSession(c, hash("s2")); !got.RevokedAt.Equal(now.Add(time.Minute)) {
		t.Errorf("revoked_at = %v, want the first revocation's time", got.RevokedAt)
	}
	if err := s.RevokeLoginSession(c, hash("nope"), now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeLoginSession(unknown) = %v, want ErrNotFound", err)
	}
	// Only u1's live sessions: s1 (s2 is revoked already, "old" expired).
	n, err := s.RevokeUserSessions(c, "u1", now.Add(2*time.Minute))
	if err != nil || n != 1 {
		t.Errorf("RevokeUserSessions(u1) = %d, %v; want 1", n, err)
	}
	if got, _ := s.GetLoginSession(c, hash("s1")); got.RevokedAt.IsZero() {
		t.Errorf("s1 alive after RevokeUserSessions")
	}
	if got, _ := s.GetLoginSession(c, hash("s3")); !got.RevokedAt.IsZero() {
		t.Errorf("another user's session was revoked")
	}
	if err := s.PruneLoginSessions(c, now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetLoginSession(c, hash("old")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an expired session survived PruneLoginSessions: %v", err)
	}
	if _, err := s.GetLoginSession(c, hash("s3")); err != nil {
		t.Errorf("a live session was pruned: %v", err)
	}
}

// testThrottleConcurrent: failures counted at once from several handles
// (nodes) are all counted.
func testThrottleConcurrent(t *testing.T, b Backend) {
	s, dsn := migrated(t, b)
	c := ctx(t)
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	if got, err := s.GetThrottle(c, "account:ines"); err != nil || got != (store.Throttle{Key: "account:ines"}) {
		t.Fatalf("GetThrottle(never stored) = %+v, %v; want the zero state", got, err)
	}
	handles := []store.Store{s, b.Open(t, dsn), b.Open(t, dsn), b.Open(t, dsn)}
	const per = 6
	var wg sync.WaitGroup
	for i, h := range handles {
		for j := range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, key := range []string{"account:ines", "addr:192.0.2.7"} {
					_, err := h.UpdateThrottle(c, key, func(t *store.Throttle) error {
						t.Failures++
						t.NextAllowed = now.Add(time.Duration(t.Failures) * time.Second)
						t.UpdatedAt = now.Add(time.Duration(i*per+j) * time.Millisecond)
						return nil
					})
					if err != nil {
						t.Errorf("UpdateThrottle(%s): %v", key, err)
					}
				}
			}()
		}
	}
	wg.Wait()
	total := len(handles) * per
	for _, key := range []string{"account:ines", "addr:192.0.2.7"} {
		got, err := b.Open(t, dsn).GetThrottle(c, key)
		if err != nil {
			t.Fatal(err)
		}
		if got.Failures != total || !got.NextAllowed.Equal(now.Add(time.Duration(total)*time.Second)) {
			t.Errorf("%s after %d concurrent failures: %+v; want failures %d (lost updates?)", key, total, got, total)
		}
	}
	boom := errors.New("refused")
	if _, err := s.UpdateThrottle(c, "account:ines", func(t *store.Throttle) error { t.Failures = 0; return boom }); !errors.Is(err, boom) {
		t.Errorf("UpdateThrottle = %v, want the updater's error", err)
	}
	if got, _ := s.GetThrottle(c, "account:ines"); got.Failures != total {
		t.Errorf("a failed update changed the state: %+v", got)
	}
}

func testThrottleReset(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	set := func(key string, failures int, next, updated time.Time) {
		t.Helper()
		got, err := s.UpdateThrottle(c, key, func(t *store.Throttle) error {
			t.Failures, t.NextAllowed, t.UpdatedAt = failures, next, updated
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := (store.Throttle{Key: key, Failures: failures, NextAllowed: next, UpdatedAt: updated}); failures > 0 && got != want {
			t.Errorf("UpdateThrottle returned %+v, want %+v", got, want)
		}
	}
	set("account:a", 3, now.Add(time.Minute), now)
	set("account:a", 0, time.Time{}, now) // a success resets it
	if got, _ := s.GetThrottle(c, "account:a"); got != (store.Throttle{Key: "account:a"}) {
		t.Errorf("after reset: %+v, want the zero state", got)
	}
	for i := range 3 {
		set(fmt.Sprint("addr:old", i), 2, now.Add(-2*time.Hour), now.Add(-2*time.Hour))
	}
	set("addr:locked", 9, now.Add(time.Hour), now.Add(-2*time.Hour)) // still locked: kept
	set("addr:recent", 1, time.Time{}, now)
	if err := s.PruneThrottles(c, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	for key, kept := range map[string]bool{"addr:old0": false, "addr:old2": false, "addr:locked": true, "addr:recent": true} {
		got, _ := s.GetThrottle(c, key)
		if (got.Failures > 0) != kept {
			t.Errorf("after PruneThrottles %s = %+v; kept %v, want %v", key, got, got.Failures > 0, kept)
		}
	}
}
