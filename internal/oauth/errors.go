package oauth

import (
	"time"

	"smartgate/internal/problem"
	"smartgate/internal/store"
)

func errMissing(param, what string) error {
	return problem.New(problem.InvalidRequest, "%s is missing: send %s", param, what)
}

func errForeign() error {
	return problem.New(problem.UnauthorizedClient, "the token was issued to another client; a client may revoke only its own tokens (RFC 7009 section 2.1)")
}

func revocationJTI(jti string, now, exp time.Time) store.Revocation {
	return store.Revocation{Kind: store.RevokeJTI, Value: jti, RevokedAt: now.UTC(), ExpiresAt: exp.Add(time.Minute)}
}
