package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"smartgate/internal/store"
)

func authzTests() []struct {
	name string
	fn   func(t *testing.T, b Backend)
} {
	return []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"AuthCodesSingleUse", testAuthCodes},
		{"PushedRequestsAndLaunches", testPushedAndLaunch},
		{"Consents", testConsents},
	}
}

func testAuthCodes(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	code := store.AuthCode{Hash: hash("code-1"), ClientID: "app", RedirectURI: "https://app.example/cb", CodeChallenge: "ch", Nonce: "n",
		Scope: "openid patient/*.rs", Subject: "u1", SessionID: "s1", AuthTime: now, Context: []byte(`{"patient":"p1"}`), CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	if err := s.CreateAuthCode(c, code); err != nil {
		t.Fatal(err)
	}
	// Of several concurrent uses exactly one succeeds; the others see the
	// code as used, with its contents (to revoke the grant issued from it).
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, reused := 0, 0
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.UseAuthCode(c, code.Hash, now.Add(time.Second))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
				if got.ClientID != "app" || got.Scope != code.Scope || string(got.Context) != `{"patient":"p1"}` || !got.AuthTime.Equal(now) {
					t.Errorf("used code = %+v", got)
				}
			case errors.Is(err, store.ErrAlreadyUsed):
				reused++
			default:
				t.Errorf("UseAuthCode: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || reused != 4 {
		t.Fatalf("concurrent uses: %d succeeded, %d saw it used; want 1 and 4", wins, reused)
	}
	if err := s.SetAuthCodeGrant(c, code.Hash, "g1"); err != nil {
		t.Fatal(err)
	}
	got, err := s.UseAuthCode(c, code.Hash, now.Add(2*time.Second))
	if !errors.Is(err, store.ErrAlreadyUsed) || got.GrantID != "g1" {
		t.Fatalf("replay = %+v, %v; want ErrAlreadyUsed with grant g1", got, err)
	}
	expired := code
	expired.Hash = hash("code-2")
	if err := s.CreateAuthCode(c, expired); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseAuthCode(c, expired.Hash, now.Add(time.Minute)); !errors.Is(err, store.ErrExpired) {
		t.Fatalf("expired code: %v", err)
	}
	if _, err := s.UseAuthCode(c, hash("nope"), now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown code: %v", err)
	}
	if err := s.PruneAuthz(c, now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseAuthCode(c, code.Hash, now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("pruned code: %v", err)
	}
}

func testPushedAndLaunch(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	now := time.Now().UTC()
	p := store.PushedRequest{Hash: hash("par"), ClientID: "app", Params: []byte(`{"state":["x"]}`), ExpiresAt: now.Add(time.Minute)}
	if err := s.CreatePushedRequest(c, p); err != nil {
		t.Fatal(err)
	}
	got, err := s.TakePushedRequest(c, p.Hash, now)
	if err != nil || got.ClientID != "app" || string(got.Params) != `{"state":["x"]}` {
		t.Fatalf("TakePushedRequest = %+v, %v", got, err)
	}
	if _, err := s.TakePushedRequest(c, p.Hash, now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second take: %v", err)
	}
	old := p
	old.Hash = hash("par-old")
	if err := s.CreatePushedRequest(c, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakePushedRequest(c, old.Hash, now.Add(time.Hour)); !errors.Is(err, store.ErrExpired) {
		t.Fatalf("expired pushed request: %v", err)
	}
	l := store.Launch{Hash: hash("launch"), ClientID: "app", Context: []byte(`{"patient":"p1"}`), CreatedBy: "cli", CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute)}
	if err := s.CreateLaunch(c, l); err != nil {
		t.Fatal(err)
	}
	// Another app presenting the launch is refused and does not use it up.
	if gl, err := s.TakeLaunch(c, l.Hash, "other-app", now); !errors.Is(err, store.ErrAccessDenied) || gl.ClientID != "app" {
		t.Fatalf("TakeLaunch by another app = %+v, %v; want ErrAccessDenied naming app", gl, err)
	}
	gl, err := s.TakeLaunch(c, l.Hash, "app", now)
	if err != nil || gl.ClientID != "app" || string(gl.Context) != `{"patient":"p1"}` || gl.CreatedBy != "cli" {
		t.Fatalf("TakeLaunch = %+v, %v", gl, err)
	}
	if _, err := s.TakeLaunch(c, l.Hash, "app", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second launch take: %v", err)
	}
}

func testConsents(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	if _, err := s.GetConsent(c, "app", "u1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no consent yet: %v", err)
	}
	for _, scope := range []string{"openid patient/*.rs", "openid patient/Observation.rs"} {
		if err := s.PutConsent(c, store.Consent{ClientID: "app", Subject: "u1", Scope: scope, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetConsent(c, "app", "u1")
		if err != nil || got.Scope != scope || !got.CreatedAt.Equal(now) {
			t.Fatalf("GetConsent = %+v, %v; want %q", got, err, scope)
		}
	}
	if err := s.DeleteConsent(c, "app", "u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetConsent(c, "app", "u1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted consent: %v", err)
	}
}
