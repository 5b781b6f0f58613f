package identity

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"smartgate/internal/audit"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// RFC 8176 authentication method reference values.
const (
	AMRPassword = "pwd"
	AMROTP      = "otp"
	AMRMFA      = "mfa"
)

// Login is the outcome of a first factor: who signed in, when and how.
// When NeedTOTP is set the password was right but the login is not done:
// CompleteTOTP must accept a code first, and CreateSession refuses it.
type Login struct {
	User     store.User
	AuthTime time.Time
	AMR      []string
	NeedTOTP bool
}

// The private reasons of a failed login: the caller's error carries one as
// its cause (logged, never shown), and the audit trail names it.
var (
	errUnknownUser   = errors.New("unknown username")
	errWrongPassword = errors.New("wrong password")
	errNoPassword    = errors.New("the user has no password (sign-in only through a linked provider)")
	errDisabled      = errors.New("the user is disabled")
	errWrongCode     = errors.New("wrong TOTP code")
	errReplayedCode  = errors.New("TOTP code used before")
	errNoTOTP        = errors.New("no TOTP enrolled")
)

// reasonName is the short reason the audit trail records.
var reasonName = map[error]string{
	errUnknownUser: "unknown_user", errWrongPassword: "wrong_password", errNoPassword: "no_password",
	errDisabled: "disabled", errWrongCode: "wrong_totp", errReplayedCode: "replayed_totp", errNoTOTP: "no_totp",
}

// loginFailed is the one error every bad-credentials case returns.
func loginFailed(reason error) error {
	return problem.Wrap(problem.LoginFailed, reason, "the username or password is wrong")
}

// accountKey and addressKey name the throttle rows. Usernames count
// without regard to case, like the store matches them; an IPv6 client
// counts by its /64, which one subscriber usually holds whole.
func accountKey(username string) string { return "account:" + strings.ToLower(username) }

func addressKey(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	a, err := netip.ParseAddr(strings.Trim(addr, "[]"))
	if err != nil {
		if len(addr) > 64 {
			addr = addr[:64]
		}
		return "addr:" + addr
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return "addr:" + p.String()
	}
	return "addr:" + a.String()
}

// throttleKeys are the rows an attempt counts against (no account row
// for a username that cannot exist).
func throttleKeys(username, addr string) []string {
	keys := []string{addressKey(addr)}
	if CheckUsername(username) == nil {
		keys = append(keys, accountKey(username))
	}
	return keys
}

// errThrottled stops a throttle update: the key must wait until until.
type errThrottled struct{ until time.Time }

func (e errThrottled) Error() string { return "throttled until " + e.until.String() }

// free is how many failures key allows before each one makes the next
// attempt wait.
func (s *Service) free(key string) int {
	if strings.HasPrefix(key, "account:") {
		return s.opts.Login.AccountFreeFailures
	}
	return s.opts.Login.AddressFreeFailures
}

// attempt is one sign-in attempt, counted against its throttle keys as a
// failure before the credentials are checked: the check and the count are
// one atomic update per key, so a burst of concurrent attempts cannot all
// pass a throttle that none of them has counted yet. A success takes the
// count back.
type attempt struct {
	s    *Service
	keys []string
	now  time.Time
}

// startAttempt refuses with login_throttled, and counts nothing, while any
// key must wait; otherwise it counts the attempt as a failure on every key.
// After the free failures each one doubles the wait, from
// login.backoff_base to login.backoff_max; a key that saw no failure for
// login.failure_window starts again from zero.
func (s *Service) startAttempt(ctx context.Context, keys []string, now time.Time) (*attempt, error) {
	lc := s.opts.Login
	a := &attempt{s: s, now: now}
	for _, k := range keys {
		free := s.free(k)
		_, err := s.st.UpdateThrottle(ctx, k, func(t *store.Throttle) error {
			if now.Before(t.NextAllowed) {
				return errThrottled{t.NextAllowed}
			}
			if !t.UpdatedAt.IsZero() && now.Sub(t.UpdatedAt) > lc.FailureWindow.D() {
				t.Failures = 0
			}
			t.Failures++
			t.UpdatedAt = now
			if over := t.Failures - free; over > 0 {
				t.NextAllowed = now.Add(backoff(lc.BackoffBase.D(), lc.BackoffMax.D(), over))
			}
			return nil
		})
		var th errThrottled
		if errors.As(err, &th) {
			a.abandon(ctx)
			secs := int((th.until.Sub(now) + time.Second - 1) / time.Second)
			return nil, problem.New(problem.LoginThrottled, "too many failed sign-ins; try again in %d second(s)", secs).
				WithHeader("Retry-After", strconv.Itoa(secs))
		}
		if err != nil {
			a.abandon(ctx)
			return nil, err
		}
		a.keys = append(a.keys, k)
	}
	return a, nil
}

// refund takes this attempt's count back from key.
func (a *attempt) refund(ctx context.Context, key string) error {
	free := a.s.free(key)
	_, err := a.s.st.UpdateThrottle(ctx, key, func(t *store.Throttle) error {
		if t.Failures > 0 {
			t.Failures--
		}
		if t.Failures <= free {
			t.NextAllowed = time.Time{}
		}
		return nil
	})
	return err
}

// abandon takes the count back from every key (the attempt ended without
// an answer: a store error, or the request gave up waiting for a hash).
func (a *attempt) abandon(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	for _, k := range a.keys {
		_ = a.refund(ctx, k)
	}
	a.keys = nil
}

// succeeded forgets the account's failures and takes the attempt back from
// the address. The address keeps its other failures: one good password
// must not reset the count of an address guessing at many accounts.
func (a *attempt) succeeded(ctx context.Context) error {
	for _, k := range a.keys {
		var err error
		if strings.HasPrefix(k, "account:") {
			_, err = a.s.st.UpdateThrottle(ctx, k, func(t *store.Throttle) error {
				*t = store.Throttle{}
				return nil
			})
		} else {
			err = a.refund(ctx, k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// backoff is base * 2^(n-1), at most max.
func backoff(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max || d <= 0 {
		return max
	}
	return d
}

type loginDetail struct {
	UserID   string   `json:"user_id,omitempty"`
	Username string   `json:"username"`
	Address  string   `json:"address,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	AMR      []string `json:"amr,omitempty"`
}

func (s *Service) auditLogin(ctx context.Context, u store.User, username, addr, outcome, reason string, amr []string) {
	actor := "anonymous"
	if u.ID != "" {
		actor = "user:" + u.ID
		username = u.Username
	}
	if len(username) > 64 {
		username = username[:64]
	}
	action := "login.success"
	if outcome == audit.Failure {
		action = "login.failure"
	}
	s.record(ctx, actor, action, outcome, loginDetail{UserID: u.ID, Username: username, Address: addr, Reason: reason, AMR: amr})
}

// Authenticate checks a username and password from the client address
// addr ("ip" or "ip:port"). Unknown username, wrong password and disabled
// account all give the same login_failed problem after the same work (an
// unknown username is checked against a dummy hash); its private cause and
// the audit event (login.failure) say which. Attempts are refused with
// login_throttled while the account or the address must wait.
//
// On success the account's failures are forgotten and the Login has AMR
// ["pwd"]; when the user has TOTP enrolled, NeedTOTP is set and
// CompleteTOTP must follow. An admin without TOTP while
// login.require_totp_for_admins is on gets totp_enrollment_required.
func (s *Service) Authenticate(ctx context.Context, username, password, addr string) (Login, error) {
	now := s.now()
	at, err := s.startAttempt(ctx, throttleKeys(username, addr), now)
	if err != nil {
		if problem.IsID(err, problem.LoginThrottled) {
			s.auditLogin(ctx, store.User{}, username, addr, audit.Failure, "throttled", nil)
		}
		return Login{}, err
	}
	u, reason, err := s.checkPassword(ctx, username, password)
	if err != nil {
		at.abandon(ctx)
		return Login{}, err
	}
	if reason != nil {
		s.auditLogin(ctx, u, username, addr, audit.Failure, reasonName[reason], nil)
		return Login{}, loginFailed(reason)
	}
	if err := at.succeeded(ctx); err != nil {
		return Login{}, err
	}
	if NeedsRehash(u.PasswordHash) {
		s.rehash(ctx, u, password)
	}
	if u.Role == store.RoleAdmin && s.opts.Login.RequireTOTPForAdmins && !u.TOTPEnabled {
		s.auditLogin(ctx, u, username, addr, audit.Failure, "totp_not_enrolled", nil)
		return Login{}, problem.New(problem.TOTPEnrollmentRequired,
			"this administrator account must sign in with a two-factor code, and none is set up; an administrator enrolls one with: smartgate user totp-enroll --username %s", u.Username)
	}
	l := Login{User: u, AuthTime: now, AMR: []string{AMRPassword}, NeedTOTP: u.TOTPEnabled}
	if !l.NeedTOTP {
		if err := s.loggedIn(ctx, &l, addr); err != nil {
			return Login{}, err
		}
	}
	return l, nil
}

// checkPassword finds the user and verifies the password, spending one
// hash whatever happens. reason is nil when the user may sign in, else the
// private reason of the refusal; err is for failures that say nothing
// about the credentials.
func (s *Service) checkPassword(ctx context.Context, username, password string) (u store.User, reason, err error) {
	err = store.ErrNotFound
	if CheckUsername(username) == nil { // no such user can exist otherwise
		u, err = s.st.GetUserByUsername(ctx, username)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.User{}, errUnknownUser, s.hasher.verifyDummy(ctx, password)
	case err != nil:
		return u, nil, err
	case u.PasswordHash == "":
		return u, errNoPassword, s.hasher.verifyDummy(ctx, password)
	}
	ok, err := s.hasher.VerifyPassword(ctx, u.PasswordHash, password)
	switch {
	case errors.Is(err, ErrMalformedHash):
		return u, nil, problem.Internal(err)
	case err != nil:
		return u, nil, err
	case !ok:
		return u, errWrongPassword, nil
	case u.Status != store.UserEnabled:
		// Checked after the hash so that it takes as long as the rest.
		return u, errDisabled, nil
	}
	return u, nil, nil
}

// rehash stores a hash with the current parameters after a successful
// login with an older one; a failure only delays it to the next login.
func (s *Service) rehash(ctx context.Context, u store.User, password string) {
	h, err := s.hasher.HashPassword(ctx, password)
	if err != nil {
		return
	}
	_ = s.st.UpdateUser(ctx, u.ID, func(x *store.User) error {
		if x.PasswordHash != u.PasswordHash {
			return errors.New("changed meanwhile") // someone set a new password: keep it
		}
		x.PasswordHash = h
		return nil
	})
}

// loggedIn records a completed login: the user's last login time and the
// audit event.
func (s *Service) loggedIn(ctx context.Context, l *Login, addr string) error {
	err := s.st.UpdateUser(ctx, l.User.ID, func(x *store.User) error {
		x.LastLoginAt = l.AuthTime
		return nil
	})
	if err != nil {
		return err
	}
	l.User.LastLoginAt = l.AuthTime
	s.auditLogin(ctx, l.User, "", addr, audit.Success, "", l.AMR)
	return nil
}
