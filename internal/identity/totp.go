package identity

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"smartgate/internal/audit"
	"smartgate/internal/keys"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// TOTP parameters: RFC 6238 with the values every authenticator app
// understands (30-second steps, 6 digits, HMAC-SHA1, a 160-bit secret as
// RFC 4226 §4 recommends).
const (
	totpPeriod     = 30
	totpSecretSize = 20
	// totpSkew is how many steps before and after the current one are
	// accepted (RFC 6238 §5.2 recommends at most one step of delay).
	totpSkew = 1
)

var totpOpts = hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// Enrollment is a new TOTP secret: the otpauth:// URL an authenticator
// app scans (as a QR code) or opens, and the base32 secret to type in.
type Enrollment struct {
	URL    string
	Secret string
}

// totpAAD binds a sealed secret to its user, so that a sealed secret
// copied onto another user's row does not open.
func totpAAD(userID string) string { return "totp:" + userID }

func (s *Service) kek() (*keys.KEK, error) {
	if s.opts.KEK == nil {
		return nil, problem.New(problem.KEKMissing, "no key-encryption key is configured to seal TOTP secrets: set kek_file or SMARTGATE_KEK")
	}
	return s.opts.KEK()
}

// EnrollTOTP gives the user a new TOTP secret, sealed under the KEK, and
// turns two-factor login on at once: from now on the user signs in with
// the password and a code. A secret enrolled before stops working.
func (s *Service) EnrollTOTP(ctx context.Context, u store.User, actor string) (Enrollment, error) {
	k, err := s.kek()
	if err != nil {
		return Enrollment{}, err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.opts.TOTPIssuer, AccountName: u.Username, Period: totpPeriod,
		SecretSize: totpSecretSize, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1, Rand: s.rand})
	if err != nil {
		return Enrollment{}, err
	}
	sealed, err := k.Seal(totpAAD(u.ID), []byte(key.Secret()))
	if err != nil {
		return Enrollment{}, err
	}
	_, err = s.update(ctx, u, func(x *store.User) error {
		x.TOTPSecretEnc, x.TOTPKEKID, x.TOTPEnabled, x.TOTPLastStep = sealed, k.ID, true, 0
		return nil
	})
	if err != nil {
		return Enrollment{}, err
	}
	s.record(ctx, actor, "user.totp_enroll", audit.Success, map[string]string{"user_id": u.ID, "username": u.Username})
	return Enrollment{URL: key.URL(), Secret: key.Secret()}, nil
}

// DisableTOTP turns two-factor login off and forgets the secret.
func (s *Service) DisableTOTP(ctx context.Context, u store.User, actor string) error {
	_, err := s.update(ctx, u, func(x *store.User) error {
		x.TOTPSecretEnc, x.TOTPKEKID, x.TOTPEnabled, x.TOTPLastStep = nil, "", false, 0
		return nil
	})
	if err != nil {
		return err
	}
	s.record(ctx, actor, "user.totp_disable", audit.Success, map[string]string{"user_id": u.ID, "username": u.Username})
	return nil
}

// openSecret returns the user's base32 TOTP secret.
func (s *Service) openSecret(u store.User) (string, error) {
	k, err := s.kek()
	if err != nil {
		return "", err
	}
	if u.TOTPKEKID != k.ID {
		return "", problem.New(problem.KEKMismatch, "the TOTP secret of user %s was sealed under KEK %s, not under this node's KEK %s", u.Username, u.TOTPKEKID, k.ID)
	}
	pt, err := k.Open(totpAAD(u.ID), u.TOTPSecretEnc)
	if err != nil {
		return "", err
	}
	return string(pt), nil
}

// matchStep returns the time step whose code is code, within totpSkew
// steps of now, comparing every candidate in constant time; ok is false
// when none matches.
func matchStep(secret, code string, now time.Time) (step int64, ok bool, err error) {
	code = strings.ReplaceAll(code, " ", "")
	if len(code) != 6 || strings.Trim(code, "0123456789") != "" {
		return 0, false, nil
	}
	cur := now.Unix() / totpPeriod
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		want, err := hotp.GenerateCodeCustom(secret, uint64(cur+d), totpOpts)
		if err != nil {
			return 0, false, err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && !ok {
			step, ok = cur+d, true
		}
	}
	return step, ok, nil
}

// CompleteTOTP finishes a login whose password was right (Authenticate
// returned NeedTOTP) with a code from the user's authenticator. A code is
// accepted once: its time step is stored, and that step or an earlier one
// is refused afterwards, on every node (RFC 6238 §5.2). Wrong codes count
// as failed logins for the account and the address.
func (s *Service) CompleteTOTP(ctx context.Context, l Login, code, addr string) (Login, error) {
	if !l.NeedTOTP || l.User.ID == "" {
		return l, errors.New("identity: CompleteTOTP needs a Login from Authenticate that asks for a code")
	}
	now := s.now()
	at, err := s.startAttempt(ctx, throttleKeys(l.User.Username, addr), now)
	if err != nil {
		if problem.IsID(err, problem.LoginThrottled) {
			s.auditLogin(ctx, l.User, "", addr, audit.Failure, "throttled", nil)
		}
		return l, err
	}
	var reason error
	err = s.st.UpdateUser(ctx, l.User.ID, func(u *store.User) error {
		if !u.TOTPEnabled || len(u.TOTPSecretEnc) == 0 {
			reason = errNoTOTP
			return reason
		}
		if u.Status != store.UserEnabled {
			reason = errDisabled
			return reason
		}
		secret, err := s.openSecret(*u)
		if err != nil {
			return err
		}
		step, ok, err := matchStep(secret, code, now)
		switch {
		case err != nil:
			return err
		case !ok:
			reason = errWrongCode
			return reason
		case step <= u.TOTPLastStep:
			reason = errReplayedCode
			return reason
		}
		u.TOTPLastStep = step
		u.LastLoginAt = now
		return nil
	})
	if reason != nil {
		s.auditLogin(ctx, l.User, "", addr, audit.Failure, reasonName[reason], nil)
		if reason == errDisabled || reason == errNoTOTP {
			return l, loginFailed(reason)
		}
		return l, problem.Wrap(problem.TOTPInvalid, reason, "the two-factor code is wrong or was used already; enter the code your authenticator app shows now")
	}
	if err != nil {
		at.abandon(ctx)
		return l, fmt.Errorf("checking the TOTP code: %w", err)
	}
	if err := at.succeeded(ctx); err != nil {
		return l, err
	}
	l.NeedTOTP = false
	l.AuthTime = now
	// The first factor stays (pwd, or an upstream provider's methods).
	l.AMR = append(slices.DeleteFunc(slices.Clone(l.AMR), func(m string) bool { return m == AMROTP || m == AMRMFA }), AMROTP, AMRMFA)
	l.User.LastLoginAt = now
	s.auditLogin(ctx, l.User, "", addr, audit.Success, "", l.AMR)
	return l, nil
}

// RewrapTOTP re-seals every TOTP secret sealed under from with to, for
// `smartgate key rewrap`. It returns how many it re-sealed.
func (s *Service) RewrapTOTP(ctx context.Context, from, to *keys.KEK) (int, error) {
	us, err := s.st.ListUsers(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, u := range us {
		if u.TOTPKEKID != from.ID || len(u.TOTPSecretEnc) == 0 {
			continue
		}
		err := s.st.UpdateUser(ctx, u.ID, func(x *store.User) error {
			if x.TOTPKEKID != from.ID {
				return nil // re-sealed meanwhile
			}
			pt, err := from.Open(totpAAD(x.ID), x.TOTPSecretEnc)
			if err != nil {
				return err
			}
			sealed, err := to.Seal(totpAAD(x.ID), pt)
			if err != nil {
				return err
			}
			x.TOTPSecretEnc, x.TOTPKEKID = sealed, to.ID
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("re-sealing the TOTP secret of %s: %w", u.Username, err)
		}
		n++
	}
	return n, nil
}
