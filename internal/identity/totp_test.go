package identity

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pquerna/otp/totp"

	"smartgate/internal/keys"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// code is what an authenticator app shows at t.
func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrolled makes a practitioner with TOTP and returns it and its secret.
func enrolled(t *testing.T, f *fixture) (store.User, string) {
	t.Helper()
	u := f.user(t, "ines", store.RolePractitioner, "")
	e, err := f.svc.EnrollTOTP(ctx(t), u, "cli")
	if err != nil {
		t.Fatal(err)
	}
	return u, e.Secret
}

func TestEnrollTOTP(t *testing.T) {
	f := newFixture(t, nil)
	c := ctx(t)
	u := f.user(t, "ines", store.RolePractitioner, "")
	e, err := f.svc.EnrollTOTP(c, u, "cli")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := url.Parse(e.URL)
	if err != nil || parsed.Scheme != "otpauth" || parsed.Host != "totp" || parsed.Path != "/smartgate:ines" {
		t.Fatalf("URL %q, want otpauth://totp/smartgate:ines?...", e.URL)
	}
	q := parsed.Query()
	if q.Get("secret") != e.Secret || q.Get("issuer") != "smartgate" || q.Get("digits") != "6" || q.Get("period") != "30" || q.Get("algorithm") != "SHA1" {
		t.Errorf("URL parameters %v", q)
	}
	if len(e.Secret) != 32 { // 160 bits in base32
		t.Errorf("secret %q has %d characters, want 32 (160 bits)", e.Secret, len(e.Secret))
	}
	if ev := f.rec.last(); ev.Action != "user.totp_enroll" || strings.Contains(ev.Detail, e.Secret) {
		t.Errorf("audit %+v", ev)
	}
	got, _ := f.st.GetUser(c, u.ID)
	if !got.TOTPEnabled || got.TOTPKEKID != f.kek.ID || got.TOTPLastStep != 0 || bytes.Contains(got.TOTPSecretEnc, []byte(e.Secret)) {
		t.Errorf("stored: enabled %v kek %q step %d, secret sealed: %v", got.TOTPEnabled, got.TOTPKEKID, got.TOTPLastStep, !bytes.Contains(got.TOTPSecretEnc, []byte(e.Secret)))
	}
	if pt, err := f.kek.Open("totp:"+u.ID, got.TOTPSecretEnc); err != nil || string(pt) != e.Secret {
		t.Errorf("the sealed secret does not open to the secret: %v", err)
	}
	// Sealed to the user: the same bytes on another user's row do not open.
	other := f.user(t, "amy", store.RolePatient, "")
	other.TOTPSecretEnc, other.TOTPKEKID, other.TOTPEnabled = got.TOTPSecretEnc, got.TOTPKEKID, true
	if _, err := f.svc.openSecret(other); !errors.Is(err, keys.ErrWrongKEK) {
		t.Errorf("a secret moved to another user opened: %v", err)
	}
	// Enrolling again replaces the secret.
	e2, err := f.svc.EnrollTOTP(c, u, "cli")
	if err != nil || e2.Secret == e.Secret {
		t.Errorf("second enrollment: %v, same secret %v", err, e2.Secret == e.Secret)
	}
}

func TestTOTPLogin(t *testing.T) {
	f := newFixture(t, nil)
	c := ctx(t)
	u, secret := enrolled(t, f)
	l, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.1")
	if err != nil || !l.NeedTOTP {
		t.Fatalf("Authenticate = %+v, %v; want NeedTOTP", l, err)
	}
	if _, _, err := f.svc.CreateSession(c, l); err == nil {
		t.Fatalf("CreateSession accepted a login that still owes its TOTP code")
	}
	if got, _ := f.st.GetUser(c, u.ID); !got.LastLoginAt.IsZero() {
		t.Errorf("the password alone counted as a login")
	}
	now := f.clk.now()
	done, err := f.svc.CompleteTOTP(c, l, code(t, secret, now), "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if done.NeedTOTP || !cmp.Equal(done.AMR, []string{"pwd", "otp", "mfa"}) {
		t.Errorf("completed login %+v", done)
	}
	if _, _, err := f.svc.CreateSession(c, done); err != nil {
		t.Errorf("CreateSession after the code: %v", err)
	}
	if e := f.rec.last(); e.Action != "login.success" || !strings.Contains(e.Detail, `"amr":["pwd","otp","mfa"]`) {
		t.Errorf("audit %+v", e)
	}
	for _, tc := range []struct {
		name string
		code string
		ok   bool
	}{
		{"the same code again (replay)", code(t, secret, now), false},
		{"the previous step's code", code(t, secret, now.Add(-30*time.Second)), false},
		{"two steps ahead", code(t, secret, now.Add(60*time.Second)), false},
		{"not digits", "12a456", false},
		{"too short", "12345", false},
		{"one step ahead (clock skew)", code(t, secret, now.Add(30*time.Second)), true},
		{"one step ahead again", code(t, secret, now.Add(30*time.Second)), false},
	} {
		l, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.1")
		if err != nil {
			t.Fatalf("%s: Authenticate: %v", tc.name, err)
		}
		_, err = f.svc.CompleteTOTP(c, l, tc.code, "192.0.2.1")
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && !problem.IsID(err, problem.TOTPInvalid) {
			t.Errorf("%s: %v, want totp_invalid", tc.name, err)
		}
		if !tc.ok {
			// Do not run into the throttle: the failures are not the point here.
			if _, err := f.st.UpdateThrottle(c, "account:ines", func(t *store.Throttle) error { *t = store.Throttle{}; return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A code with a space in the middle, as apps show it.
	f.clk.add(90 * time.Second)
	l, _ = f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.2")
	spaced := code(t, secret, f.clk.now())
	if _, err := f.svc.CompleteTOTP(c, l, spaced[:3]+" "+spaced[3:], "192.0.2.2"); err != nil {
		t.Errorf("code with a space: %v", err)
	}
	if err := f.svc.DisableTOTP(c, u, "cli"); err != nil {
		t.Fatal(err)
	}
	if l, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.1"); err != nil || l.NeedTOTP {
		t.Errorf("after DisableTOTP: %+v, %v", l, err)
	}
}

// TestTOTPWrongCodesThrottle: guessing codes counts as failed logins.
func TestTOTPWrongCodesThrottle(t *testing.T) {
	f := newFixture(t, nil)
	c := ctx(t)
	_, secret := enrolled(t, f)
	l, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := f.svc.CompleteTOTP(c, l, "000000", "192.0.2.1"); !problem.IsID(err, problem.TOTPInvalid) {
			t.Fatalf("guess %d: %v", i+1, err)
		}
	}
	if _, err := f.svc.CompleteTOTP(c, l, code(t, secret, f.clk.now()), "192.0.2.1"); !problem.IsID(err, problem.LoginThrottled) {
		t.Errorf("the right code after 4 wrong ones: %v, want login_throttled", err)
	}
	if e := f.rec.last(); !strings.Contains(e.Detail, `"reason":"throttled"`) {
		t.Errorf("audit %+v", e)
	}
}

// TestTOTPConcurrentReplay: one code presented at once on several
// handles (nodes) is accepted once.
func TestTOTPConcurrentReplay(t *testing.T) {
	f := newFixture(t, nil)
	c := ctx(t)
	_, secret := enrolled(t, f)
	l, err := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	cd := code(t, secret, f.clk.now())
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 6 {
		svc := f.svc
		if i%2 == 1 {
			svc = New(openStore(t, f.dsn), f.svc.opts)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := svc.CompleteTOTP(c, l, cd, "192.0.2.1")
			switch {
			case err == nil:
				mu.Lock()
				ok++
				mu.Unlock()
			case !problem.IsID(err, problem.TOTPInvalid) && !problem.IsID(err, problem.LoginThrottled):
				// Replays count as failures, so the account soon waits.
				t.Errorf("CompleteTOTP: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Errorf("one code accepted %d times, want once", ok)
	}
}

func TestRewrapTOTP(t *testing.T) {
	f := newFixture(t, nil)
	c := ctx(t)
	_, secret := enrolled(t, f)
	old := f.kek
	next, _ := keys.ParseKEK(keys.GenerateKEK(), "test")
	n, err := f.svc.RewrapTOTP(c, old, next)
	if err != nil || n != 1 {
		t.Fatalf("RewrapTOTP = %d, %v; want 1", n, err)
	}
	l, _ := f.svc.Authenticate(c, "ines", goodPassword, "192.0.2.1")
	if _, err := f.svc.CompleteTOTP(c, l, code(t, secret, f.clk.now()), "192.0.2.1"); !problem.IsID(err, problem.KEKMismatch) {
		t.Errorf("with the old KEK after rewrap: %v, want kek_mismatch", err)
	}
	f.kek = next
	if _, err := f.svc.CompleteTOTP(c, l, code(t, secret, f.clk.now()), "192.0.2.1"); err != nil {
		t.Errorf("with the new KEK: %v", err)
	}
}
