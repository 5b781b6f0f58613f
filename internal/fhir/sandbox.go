package fhir

import (
	"context"
	"net/http"
	"time"

	"smartgate/internal/problem"
	"smartgate/internal/requestid"
	"smartgate/internal/token"
)

// SandboxErrors is the error injection of `serve --sandbox` as the FHIR API
// sees it (docs/portal.md "The sandbox"): a developer asked that a client's
// next FHIR request be refused as if its access token had expired.
type SandboxErrors interface {
	// TakeExpiredToken reports whether the client's request gets the
	// injected answer, and if so forgets the injection (it fires once).
	TakeExpiredToken(clientID, requestID string) bool
}

type sandboxKey struct{}

// WithSandbox returns ctx carrying the sandbox's error injection. Only the
// server in sandbox mode calls it; without it sandboxTokenError does nothing.
func WithSandbox(ctx context.Context, sb SandboxErrors) context.Context {
	return context.WithValue(ctx, sandboxKey{}, sb)
}

// sandboxTokenError answers a verified token with an injected "expired"
// refusal, worded as a real one (RFC 6750 §3.1 invalid_token), when the
// sandbox holds one for the token's client; nil otherwise, and always
// outside sandbox mode.
func (a *API) sandboxTokenError(r *http.Request, c *token.Claims) error {
	sb, _ := r.Context().Value(sandboxKey{}).(SandboxErrors)
	if sb == nil || !sb.TakeExpiredToken(c.ClientID, requestid.From(r.Context())) {
		return nil
	}
	desc := "the access token is " + string(token.Expired) + ": the access token expired at " + time.Now().UTC().Format(time.RFC3339) +
		"; get a new one from the token endpoint [sandbox: injected error; the next request gets the normal answer]"
	return problem.New(problem.InvalidToken, "%s", desc).
		WithHeader("WWW-Authenticate", `Bearer realm="`+a.base+`", error="invalid_token", error_description="`+headerSafe(desc)+`"`)
}
