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

// checkThrottle refuses an attempt made before the later NextAllowed of
// its keys, with a Retry-After in whole seconds.
func (s *Service) checkThrottle(ctx context.Context, keys []string, now time.Time) error {
	var until time.Time
	for _, k := range keys {
		t, err := s.st.GetThrottle(ctx, k)
		if err != nil {
			return err
		}
		if t.NextAllowed.After(until) {
			until = t.NextAllowed
		}
	}
	if !now.Before(until) {
		return nil
	}
	secs := int((until.Sub(now) + time.Second - 1) / time.Second)
	return problem.New(problem.LoginThrottled, "too many failed sign-ins; try again in %d second(s)", secs).
		WithHeader("Retry-After", strconv.Itoa(secs))
}

// countFailure adds a failure to each key. After the free failures each
// one doubles the wait, from Login.BackoffBase to Login.BackoffMax; a key
// that saw no failure for Login.FailureWindow starts again from zero.
func (s *Service) countFailure(ctx context.Context, keys []string, now time.Time) error {
	lc := s.opts.Login
	for _, k := range keys {
		free := lc.AddressFreeFailures
		if strings.HasPrefix(k, "account:") {
			free = lc.AccountFreeFailures
		}
		_, err := s.st.UpdateThrottle(ctx, k, func(t *store.Throttle) error {
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

// clearAccount forgets the account's failures after a successful login.
// The address keeps its count: one good password must not reset the
// counter of an address guessing at many accounts.
func (s *Service) clearAccount(ctx context.Context, username string) error {
	_, err := s.st.UpdateThrottle(ctx, accountKey(username), func(t *store.Throttle) error {
		*t = store.Throttle{}
		return nil
	})
	return err
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
	keys := throttleKeys(username, addr)
	if err := s.checkThrottle(ctx, keys, now); err != nil {
		if problem.IsID(err, problem.LoginThrottled) {
			s.auditLogin(ctx, store.User{}, username, addr, audit.Failure, "throttled", nil)
		}
		return Login{}, err
	}
	var reason error
	u, err := store.User{}, store.ErrNotFound
	if CheckUsername(username) == nil { // no such user can exist otherwise
		u, err = s.st.GetUserByUsername(ctx, username)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		u, reason = store.User{}, errUnknownUser
		if err := s.hasher.verifyDummy(ctx, password); err != nil {
			return Login{}, err
		}
	case err != nil:
		return Login{}, err
	case u.PasswordHash == "":
		reason = errNoPassword
		if err := s.hasher.verifyDummy(ctx, password); err != nil {
			return Login{}, err
		}
	default:
		ok, err := s.hasher.VerifyPassword(ctx, u.PasswordHash, password)
		switch {
		case errors.Is(err, ErrMalformedHash):
			return Login{}, problem.Internal(err)
		case err != nil:
			return Login{}, err
		case !ok:
			reason = errWrongPassword
		case u.Status != store.UserEnabled:
			// Checked after the hash so that it takes as long as the rest.
			reason = errDisabled
		}
	}
	if reason != nil {
		if err := s.countFailure(ctx, keys, now); err != nil {
			return Login{}, err
		}
		s.auditLogin(ctx, u, username, addr, audit.Failure, reasonName[reason], nil)
		return Login{}, loginFailed(reason)
	}
	if err := s.clearAccount(ctx, u.Username); err != nil {
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
