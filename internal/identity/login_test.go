package identity

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"smartgate/internal/config"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

func TestAuthenticateSuccess(t *testing.T) {
	f := newFixture(t, nil)
	c := ctx(t)
	u := f.user(t, "Ines.Munoz", store.RolePractitioner, "Practitioner/pra-ines-munoz")
	l, err := f.svc.Authenticate(c, "ines.MUNOZ", goodPassword, "192.0.2.1:51234")
	if err != nil {
		t.Fatal(err)
	}
	if l.User.ID != u.ID || l.NeedTOTP || !cmp.Equal(l.AMR, []string{"pwd"}) || !l.AuthTime.Equal(f.clk.now()) {
		t.Errorf("Login = %+v", l)
	}
	if got, _ := f.st.GetUser(c, u.ID); !got.LastLoginAt.Equal(f.clk.now()) {
		t.Errorf("last login %v, want %v", got.LastLoginAt, f.clk.now())
	}
	e := f.rec.last()
	if e.Action != "login.success" || e.Actor != "user:"+u.ID || e.Outcome != "success" || !strings.Contains(e.Detail, `"address":"192.0.2.1:51234"`) {
		t.Errorf("audit %+v", e)
	}
}

// TestAuthenticateNoEnumeration: an unknown user, a wrong password, a
// disabled account and a user without a password get the same public
// answer; only the private cause and the audit trail tell them apart.
func TestAuthenticateNoEnumeration(t *testing.T) {
	f := newFixture(t, nil)
	c := ctx(t)
	f.user(t, "ines", store.RolePractitioner, "")
	off := f.user(t, "amy", store.RolePatient, "")
	if _, err := f.svc.SetStatus(c, off, store.UserDisabled, "cli"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CreateUser(c, NewUser{Username: "fed", Role: store.RolePatient}, "cli"); err != nil {
		t.Fatal(err)
	}
	var public string
	for i, tc := range []struct {
		username, password, reason string
	}{
		{"nobody", goodPassword, "unknown_user"},
		{"ines", "wrong password!", "wrong_password"},
		{"amy", goodPassword, "disabled"},
		{"fed", goodPassword, "no_password"},
		{"not a username", goodPassword, "unknown_user"},
	} {
		addr := "198.51.100." + string(rune('1'+i)) // each from its own address: no throttling here
		_, err := f.svc.Authenticate(c, tc.username, tc.password, addr)
		var pe *problem.Error
		if !errors.As(err, &pe) || pe.ID != problem.LoginFailed {
			t.Fatalf("%s: Authenticate = %v, want login_failed", tc.reason, err)
		}
		if public == "" {
			public = pe.Description + "|" + pe.Hint
		} else if got := pe.Description + "|" + pe.Hint; got != public {
			t.Errorf("%s: public message %q differs from %q: it tells the cases apart", tc.reason, got, public)
		}
		if pe.HTTPStatus() != 400 || pe.Entry().Code != "invalid_grant" {
			t.Errorf("%s: status %d code %s", tc.reason, pe.HTTPStatus(), pe.Entry().Code)
		}
		if pe.Cause == nil {
			t.Errorf("%s: no private cause", tc.reason)
		}
		if e := f.rec.last(); e.Action != "login.failure" || !strings.Contains(e.Detail, `"reason":"`+tc.reason+`"`) {
			t.Errorf("%s: audit %+v", tc.reason, e)
		}
	}
}

// TestUnknownUserSpendsAHash: an unknown username waits for a hashing
// slot and computes a hash like a known one (timing), which shows as a
// deadline when no slot is free.
func TestUnknownUserSpendsAHash(t *testing.T) {
	h := NewHasher(1)
	f := newFixture(t, func(o *Options) { o.Hasher = h })
	if err := h.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.release()
	c, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := f.svc.Authenticate(c, "nobody", goodPassword, "192.0.2.1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Authenticate(unknown user) with no hashing slot free = %v; want it to wait for one (the dummy hash)", err)
	}
}

func retryAfter(err error) string {
	var pe *problem.Error
	if errors.As(err, &pe) && pe.Header != nil {
		return pe.Header.Get("Retry-After")
	}
	return ""
}

func TestAccountThrottling(t *testing.T) {
	f := newFixture(t, nil) // 3 free failures per account, then 1s, 2s, 4s, 8s (max)
	c := ctx(t)
	f.user(t, "ines", store.RolePractitioner, "")
	addrs := []string{"192.0.2.1", "192.0.2.2", "2001:db8::1", "203.0.113.9"} // rotating addresses do not help
	fail := func(i int) error {
		_, err := f.svc.Authenticate(c, "INES", "wrong password!", addrs[i%len(addrs)])
		return err
	}
	for i := range 3 {
		if err := fail(i); !problem.IsID(err, problem.LoginFailed) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	for i, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		if err := fail(i); !problem.IsID(err, problem.LoginFailed) {
			t.Fatalf("failure %d: %v", i+4, err)
		}
		// Even the right password must wait.
		_, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.50")
		if !problem.IsID(err, problem.LoginThrottled) {
			t.Fatalf("after %d failures: %v, want login_throttled", i+4, err)
		}
		if got, want := retryAfter(err), strconv.Itoa(int(wait/time.Second)); got != want {
			t.Errorf("after %d failures: Retry-After %q, want %s", i+4, got, want)
		}
		if e := f.rec.last(); !strings.Contains(e.Detail, `"reason":"throttled"`) {
			t.Errorf("throttled attempt audited as %+v", e)
		}
		f.clk.add(wait)
	}
	if _, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.50"); err != nil {
		t.Fatalf("after the wait, the right password: %v", err)
	}
	// Success forgets the account's failures: 3 free ones again.
	for i := range 3 {
		if err := fail(i); !problem.IsID(err, problem.LoginFailed) {
			t.Fatalf("after success, failure %d: %v", i+1, err)
		}
	}
	if _, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.51"); err != nil {
		t.Errorf("3 failures after a success throttled already: %v", err)
	}
}

// TestThrottleSameForUnknownUsers: an unknown username is throttled like a
// known one, so throttling reveals nothing either.
func TestThrottleSameForUnknownUsers(t *testing.T) {
	f := newFixture(t, nil)
	c := ctx(t)
	f.user(t, "ines", store.RolePractitioner, "")
	for _, name := range []string{"ines", "nobody"} {
		var errs []string
		for i := range 5 {
			_, err := f.svc.Authenticate(c, name, "wrong password!", "192.0.2."+string(rune('1'+i)))
			errs = append(errs, string(problem.From(err).ID))
		}
		want := []string{"login_failed", "login_failed", "login_failed", "login_failed", "login_throttled"}
		if !cmp.Equal(errs, want) {
			t.Errorf("%s: %v, want %v", name, errs, want)
		}
	}
}

func TestAddressThrottling(t *testing.T) {
	f := newFixture(t, nil) // 5 free failures per address
	c := ctx(t)
	f.user(t, "ines", store.RolePractitioner, "")
	// Guessing at many accounts from one /64.
	for i := range 5 {
		addr := "[2001:db8:1:2::" + string(rune('a'+i)) + "]:443"
		if _, err := f.svc.Authenticate(c, "user"+string(rune('a'+i)), "wrong password!", addr); !problem.IsID(err, problem.LoginFailed) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	if _, err := f.svc.Authenticate(c, "userz", "wrong password!", "2001:db8:1:2::ffff"); !problem.IsID(err, problem.LoginFailed) {
		t.Fatalf("6th failure: %v", err)
	}
	if _, err := f.svc.Authenticate(c, "ines", goodPassword, "2001:db8:1:2:aaaa::1"); !problem.IsID(err, problem.LoginThrottled) {
		t.Errorf("another address of the same /64: %v, want login_throttled", err)
	}
	if _, err := f.svc.Authenticate(c, "ines", goodPassword, "2001:db8:1:3::1"); err != nil {
		t.Errorf("another /64: %v", err)
	}
	if _, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.7"); err != nil {
		t.Errorf("an IPv4 address: %v", err)
	}
}

func TestFailureWindow(t *testing.T) {
	f := newFixture(t, nil)
	c := ctx(t)
	f.user(t, "ines", store.RolePractitioner, "")
	for i := range 3 {
		f.svc.Authenticate(c, "ines", "wrong password!", "192.0.2."+string(rune('1'+i)))
	}
	f.clk.add(61 * time.Minute) // longer than the failure window
	for i := range 3 {
		if _, err := f.svc.Authenticate(c, "ines", "wrong password!", "192.0.2."+string(rune('5'+i))); !problem.IsID(err, problem.LoginFailed) {
			t.Fatalf("failure %d after the window: %v", i+1, err)
		}
	}
	if _, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.9"); err != nil {
		t.Errorf("failures before the window still counted: %v", err)
	}
	if err := f.svc.Prune(c); err != nil {
		t.Fatal(err)
	}
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":              "addr:192.0.2.1",
		"192.0.2.1:8080":         "addr:192.0.2.1",
		"::ffff:192.0.2.1":       "addr:192.0.2.1",
		"[2001:db8::1]:443":      "addr:2001:db8::/64",
		"2001:db8:0:0:ffff::1":   "addr:2001:db8::/64",
		"fe80::1%eth0":           "addr:fe80::/64",
		"not an address":         "addr:not an address",
		strings.Repeat("x", 100): "addr:" + strings.Repeat("x", 64),
	} {
		if got := addressKey(in); got != want {
			t.Errorf("addressKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {5, 16 * time.Second}, {11, 15 * time.Minute}, {1000, 15 * time.Minute}} {
		if got := backoff(time.Second, 15*time.Minute, tc.n); got != tc.want {
			t.Errorf("backoff(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

func TestRehashOnLogin(t *testing.T) {
	f := newFixture(t, nil)
	c := ctx(t)
	u := f.user(t, "ines", store.RolePractitioner, "")
	if err := f.st.UpdateUser(c, u.ID, func(x *store.User) error { x.PasswordHash = refHashOlder; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	got, _ := f.st.GetUser(c, u.ID)
	if got.PasswordHash == refHashOlder || NeedsRehash(got.PasswordHash) {
		t.Errorf("hash after login %q: not rehashed with the current parameters", got.PasswordHash)
	}
	if _, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.1"); err != nil {
		t.Errorf("login after rehash: %v", err)
	}
}

func TestRequireTOTPForAdmins(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Login.RequireTOTPForAdmins = true })
	c := ctx(t)
	admin := f.user(t, "root", store.RoleAdmin, "")
	f.user(t, "ines", store.RolePractitioner, "")
	if _, err := f.svc.Authenticate(c, "root", goodPassword, "192.0.2.1"); !problem.IsID(err, problem.TOTPEnrollmentRequired) {
		t.Errorf("admin without TOTP = %v, want totp_enrollment_required", err)
	}
	if _, err := f.svc.Authenticate(c, "root", "wrong password!", "192.0.2.1"); !problem.IsID(err, problem.LoginFailed) {
		t.Errorf("admin with a wrong password = %v, want login_failed (nothing about TOTP)", err)
	}
	if l, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.1"); err != nil || l.NeedTOTP {
		t.Errorf("a practitioner needs no TOTP: %+v, %v", l, err)
	}
	if _, err := f.svc.EnrollTOTP(c, admin, "cli"); err != nil {
		t.Fatal(err)
	}
	if l, err := f.svc.Authenticate(c, "root", goodPassword, "192.0.2.1"); err != nil || !l.NeedTOTP {
		t.Errorf("admin with TOTP: %+v, %v; want NeedTOTP", l, err)
	}
	if config.Default().Login.RequireTOTPForAdmins {
		t.Errorf("login.require_totp_for_admins defaults to true")
	}
}

// TestConcurrentBurstThrottled: attempts fired at once cannot all slip
// through before the first failure is counted; each one is counted (on
// whichever node) before its password is checked.
func TestConcurrentBurstThrottled(t *testing.T) {
	f := newFixture(t, nil) // 3 free failures per account
	c := ctx(t)
	f.user(t, "ines", store.RolePractitioner, "")
	other := New(openStore(t, f.dsn), f.svc.opts) // a second node
	const n = 16
	ids := make([]problem.ID, n)
	var wg sync.WaitGroup
	for i := range n {
		svc := f.svc
		if i%2 == 1 {
			svc = other
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := svc.Authenticate(c, "ines", "wrong password!", fmt.Sprintf("198.51.100.%d", i+1))
			ids[i] = problem.From(err).ID
		}()
	}
	wg.Wait()
	count := map[problem.ID]int{}
	for _, id := range ids {
		count[id]++
	}
	// The 4th failure sets the first wait; every later attempt meets it.
	if count[problem.LoginFailed] != 4 || count[problem.LoginThrottled] != n-4 {
		t.Errorf("%d concurrent wrong passwords: %v; want 4 checked and %d throttled", n, count, n-4)
	}
}

// TestSuccessDoesNotCountAgainstAddress: sign-ins that succeed take their
// count back from the address (a clinic behind one NAT address).
func TestSuccessDoesNotCountAgainstAddress(t *testing.T) {
	f := newFixture(t, nil) // 5 free failures per address
	c := ctx(t)
	f.user(t, "ines", store.RolePractitioner, "")
	for i := range 8 {
		if _, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.1"); err != nil {
			t.Fatalf("login %d: %v", i+1, err)
		}
	}
	for i := range 6 {
		if _, err := f.svc.Authenticate(c, fmt.Sprint("user", i), "wrong password!", "192.0.2.1"); !problem.IsID(err, problem.LoginFailed) {
			t.Fatalf("failure %d after 8 good logins: %v, want login_failed", i+1, err)
		}
	}
	if _, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.1"); !problem.IsID(err, problem.LoginThrottled) {
		t.Errorf("after 6 failures from the address: %v, want login_throttled", err)
	}
	// A request that gives up waiting for a hash takes its count back too.
	f.clk.add(time.Hour + time.Minute)
	h := f.svc.hasher
	for range cap(h.sem) {
		_ = h.acquire(context.Background())
	}
	short, cancel := context.WithTimeout(c, 20*time.Millisecond)
	defer cancel()
	for range 3 {
		if _, err := f.svc.Authenticate(short, "ines", goodPassword, "192.0.2.9"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("with no hashing slot: %v", err)
		}
	}
	for range cap(h.sem) {
		h.release()
	}
	if th, _ := f.st.GetThrottle(c, "account:ines"); th.Failures != 0 {
		t.Errorf("abandoned attempts still counted: %+v", th)
	}
}
