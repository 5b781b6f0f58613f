package fhir

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"smartgate/internal/problem"
	"smartgate/internal/token"
)

// fakeSandbox fires once for one client.
type fakeSandbox struct {
	client string
	armed  bool
}

func (f *fakeSandbox) TakeExpiredToken(clientID, _ string) bool {
	if f.armed && clientID == f.client {
		f.armed = false
		return true
	}
	return false
}

// TestSandboxTokenError: without the sandbox in the request's context (every
// mode but serve --sandbox) the hook does nothing; with it, an armed
// injection answers once as an expired token would.
func TestSandboxTokenError(t *testing.T) {
	a := &API{base: "https://ehr.example.org/fhir"}
	claims := &token.Claims{ClientID: "app"}
	plain := httptest.NewRequest(http.MethodGet, "/fhir/Patient", nil)
	if err := a.sandboxTokenError(plain, claims); err != nil {
		t.Fatalf("without a sandbox: %v", err)
	}
	sb := &fakeSandbox{client: "app", armed: true}
	r := plain.WithContext(WithSandbox(plain.Context(), sb))
	if err := a.sandboxTokenError(r, &token.Claims{ClientID: "other"}); err != nil {
		t.Errorf("another client's token got the injection: %v", err)
	}
	err := a.sandboxTokenError(r, claims)
	pe := problem.From(err)
	if err == nil || pe.ID != problem.InvalidToken || !strings.Contains(pe.Description, "expired") {
		t.Fatalf("armed: %v, want invalid_token saying expired", err)
	}
	if h := pe.Header.Get("WWW-Authenticate"); !strings.Contains(h, `error="invalid_token"`) || !strings.Contains(h, `realm="https://ehr.example.org/fhir"`) {
		t.Errorf("WWW-Authenticate %q, want the realm and error=invalid_token", h)
	}
	if err := a.sandboxTokenError(r, claims); err != nil {
		t.Errorf("the injection fired twice: %v", err)
	}
}
