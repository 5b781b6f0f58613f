package identity

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"time"

	"smartgate/internal/store"
)

// ErrNoSession means a session cookie names no live session: unknown,
// expired, revoked, or its user is gone or disabled. The browser should
// sign in again; nothing more is said.
var ErrNoSession = errors.New("identity: no live login session")

// errTOTPPending refuses a session for a login that still owes its code.
var errTOTPPending = errors.New("identity: the login needs its TOTP code (CompleteTOTP) before a session")

// SessionHash is the SHA-256 of a session id, the form the store keeps.
func SessionHash(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// SessionRef names a session without revealing its id: the hex of the
// first 16 bytes of its hash. Grants store it (Grant.SessionID) so that
// online_access ends with the session, and OpenID Connect may use it as
// "sid".
func SessionRef(hash []byte) string {
	if len(hash) > 16 {
		hash = hash[:16]
	}
	return hex.EncodeToString(hash)
}

// CreateSession starts a login session for a completed login and returns
// the session id for the cookie (256 random bits, base64url) and the
// stored session. It lives for login.session_ttl.
func (s *Service) CreateSession(ctx context.Context, l Login) (string, store.LoginSession, error) {
	if l.NeedTOTP || l.User.ID == "" {
		return "", store.LoginSession{}, errTOTPPending
	}
	var b [32]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", store.LoginSession{}, err
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now()
	ttl := s.opts.Login.SessionTTL.D()
	if ttl <= 0 {
		ttl = 12 * time.Hour
	}
	sess := store.LoginSession{IDHash: SessionHash(id), UserID: l.User.ID, AuthTime: l.AuthTime.UTC().Truncate(time.Microsecond),
		AMR: l.AMR, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := s.st.CreateLoginSession(ctx, sess); err != nil {
		return "", store.LoginSession{}, err
	}
	return id, sess, nil
}

// LookupSession returns the live session named by a cookie's session id
// and its user, or ErrNoSession.
func (s *Service) LookupSession(ctx context.Context, id string) (store.LoginSession, store.User, error) {
	if id == "" || len(id) > 128 {
		return store.LoginSession{}, store.User{}, ErrNoSession
	}
	sess, err := s.st.GetLoginSession(ctx, SessionHash(id))
	if errors.Is(err, store.ErrNotFound) {
		return sess, store.User{}, ErrNoSession
	}
	if err != nil {
		return sess, store.User{}, err
	}
	if !sess.RevokedAt.IsZero() || !s.now().Before(sess.ExpiresAt) {
		return sess, store.User{}, ErrNoSession
	}
	u, err := s.st.GetUser(ctx, sess.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return sess, u, ErrNoSession
	}
	if err != nil {
		return sess, u, err
	}
	if u.Status != store.UserEnabled {
		return sess, u, ErrNoSession
	}
	return sess, u, nil
}

// RevokeSession ends the session named by a cookie's session id (logout);
// an unknown id is not an error.
func (s *Service) RevokeSession(ctx context.Context, id string) error {
	err := s.st.RevokeLoginSession(ctx, SessionHash(id), s.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// RevokeUserSessions ends every session of a user and returns how many.
func (s *Service) RevokeUserSessions(ctx context.Context, userID string) (int, error) {
	return s.st.RevokeUserSessions(ctx, userID, s.now())
}

// Prune deletes expired sessions and throttle rows that no longer hold
// anything back (for a node's janitor).
func (s *Service) Prune(ctx context.Context) error {
	now := s.now()
	if err := s.st.PruneLoginSessions(ctx, now); err != nil {
		return err
	}
	window := s.opts.Login.FailureWindow.D()
	if window <= 0 {
		window = time.Hour
	}
	return s.st.PruneThrottles(ctx, now.Add(-window))
}
