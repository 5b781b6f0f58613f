package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
)

// freeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestTwoNodesShareOAuthState runs two smartgate nodes on one PostgreSQL
// database behind one issuer, as production runs them: a client assertion
// accepted by node A is a replay at node B, and a token revoked at node A,
// or whose client an administrator disabled, is dead at node B within the
// bound.
//
// The two main nodes run without --dev: in dev mode each node's issuer is
// its own listen address, so a token or an assertion (aud = the token
// endpoint) of one dev node is foreign to the other whatever the shared
// state says. Two dev nodes then show the jti rule with an aud array.
func TestTwoNodesShareOAuthState(t *testing.T) {
	t.Parallel()
	dsn := newPostgresDatabase(t) // skips without PostgreSQL unless required
	env := baseEnv("SMARTGATE_KEK=" + newKEK(t))
	portA, portB := freeLoopbackPort(t), freeLoopbackPort(t)
	for portB == portA {
		portB = freeLoopbackPort(t)
	}
	issuer := "http://127.0.0.1:" + strconv.Itoa(portA)
	node := func(name string, port int) string {
		dir := filepath.Join(t.TempDir(), name)
		p := start(t, env, "serve", "--issuer", issuer, "--listen", "127.0.0.1:"+strconv.Itoa(port), "--data-dir", dir, "--database", dsn)
		if s := waitReady(t, p); s.URL != issuer {
			t.Fatalf("node %s announced %s, want the shared issuer %s", name, s.URL, issuer)
		}
		return "http://127.0.0.1:" + strconv.Itoa(port)
	}
	a, b := node("a", portA), node("b", portB)
	adminDir := t.TempDir()
	cli := func(args ...string) result {
		t.Helper()
		return mustRun(t, env, append(args, "--data-dir", adminDir, "--database", dsn, "--output", "json")...)
	}
	createClient := func(name string, args ...string) cliClient {
		t.Helper()
		r := cli(append([]string{"client", "create", "--name", name}, args...)...)
		var c cliClient
		if err := json.Unmarshal([]byte(r.stdout), &c); err != nil || c.ClientID == "" {
			t.Fatalf("client create -o json printed no client_id (%v): %s", err, r)
		}
		return c
	}
	key := newECKey(t, "pg-es384")
	backend := createClient("backend", "--type", "confidential-asymmetric", "--jwks-file", writeJWKSFile(t, key), "--scope", "system/Patient.rs")
	sym := createClient("symmetric", "--type", "confidential-symmetric", "--scope", "system/Patient.rs")
	rs := createClient("resource server", "--type", "confidential-symmetric", "--scope", "system/Patient.rs", "--introspect-any")
	symCreds := creds{id: sym.ClientID, secret: sym.ClientSecret}
	rsCreds := creds{id: rs.ClientID, secret: rs.ClientSecret}
	tokenURL := issuer + "/oauth2/token" // the aud of assertions, whichever node gets them

	// One assertion, two nodes: accepted once, a replay everywhere after.
	assertion := key.sign(t, assertionClaims(backend.ClientID, tokenURL), nil)
	if r := withAssertion(t, a, assertion, assertionType, ""); r.status != http.StatusOK {
		t.Fatalf("node A: first use of an assertion: %s", r)
	}
	r := withAssertion(t, b, assertion, assertionType, "")
	wantOAuthError(t, "node B: an assertion node A accepted", r, http.StatusUnauthorized, "invalid_client", "jti", "already used")
	// Fresh assertions work on both.
	mustToken(t, b, assertCreds(t, backend.ClientID, tokenURL, key), "")

	// A token from node A is valid at node B, until node A revokes it.
	tr := mustToken(t, a, symCreds, "system/Patient.rs")
	wantActive(t, b, rsCreds, tr.AccessToken, "system/Patient.rs", sym.ClientID)
	wantActive(t, b, symCreds, tr.AccessToken, "system/Patient.rs", sym.ClientID)
	if r := postForm(t, a+"/oauth2/revoke", url.Values{"token": {tr.AccessToken}}, symCreds); r.status != http.StatusOK {
		t.Fatalf("node A: revocation: %s", r)
	}
	waitInactive(t, b, rsCreds, tr.AccessToken, "node B: a token revoked at node A")
	waitInactive(t, a, rsCreds, tr.AccessToken, "node A: a token it revoked")

	// Two dev nodes on the same database: each has its own issuer (its
	// listen address), so one assertion fits both only with an aud array
	// naming both token endpoints; its jti is still accepted only once.
	pa := start(t, env, "serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "dev-a"), "--database", dsn)
	pb := start(t, env, "serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "dev-b"), "--database", dsn)
	devA, devB := waitReady(t, pa).URL, waitReady(t, pb).URL
	claims := assertionClaims(backend.ClientID, devA+"/oauth2/token")
	claims["aud"] = []string{devA + "/oauth2/token", devB + "/oauth2/token"}
	assertion = key.sign(t, claims, nil)
	if r := withAssertion(t, devA, assertion, assertionType, ""); r.status != http.StatusOK {
		t.Fatalf("dev node A: first use of an assertion: %s", r)
	}
	r = withAssertion(t, devB, assertion, assertionType, "")
	wantOAuthError(t, "dev node B: an assertion dev node A accepted", r, http.StatusUnauthorized, "invalid_client", "jti", "already used")

	// Disabling a client with the CLI reaches both nodes.
	tr = mustToken(t, b, symCreds, "")
	mustRun(t, env, "client", "disable", "--data-dir", adminDir, "--database", dsn, "--", sym.ClientID)
	for _, n := range []string{a, b} {
		waitInactive(t, n, rsCreds, tr.AccessToken, n+": a token of a disabled client")
		waitFor(t, revocationWait, n+": a disabled client's token request refused", func() (bool, string) {
			r := clientCredentials(t, n, symCreds, "")
			return r.status == http.StatusUnauthorized, r.String()
		})
		wantOAuthError(t, n+": disabled client", clientCredentials(t, n, symCreds, ""), http.StatusUnauthorized, "invalid_client", "smartgate client enable "+sym.ClientID)
	}
}
