package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// nodeEnv is this process's environment without SMARTGATE_* settings and
// with npm's network chatter off.
func nodeEnv(extra ...string) []string {
	return baseEnv(append([]string{"npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false"}, extra...)...)
}

// nodeProject is npmProject for e2e/node (openid-client and jose).
func nodeProject(t *testing.T) string {
	t.Helper()
	return npmProject(t, "node", "the Node.js relying-party tests")
}

// npmProject copies the npm project e2e/<src> (its package.json,
// package-lock.json, scripts and pages, without a node_modules someone
// installed there) to a temporary directory and installs the locked
// dependencies there with `npm ci`, so that tests never write into the
// source tree. It skips the test loudly when node or npm is missing (what
// names the tests that did not run), unless SMARTGATE_REQUIRE_NODE=1 (or
// SMARTGATE_REQUIRE_BROWSER=1) makes that a failure.
func npmProject(t *testing.T, src, what string) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("SMARTGATE_REQUIRE_NODE") == "1" || os.Getenv("SMARTGATE_REQUIRE_BROWSER") == "1" {
				t.Fatalf("%s is not on PATH and SMARTGATE_REQUIRE_NODE or SMARTGATE_REQUIRE_BROWSER is 1: install Node.js 20.19 or later", tool)
			}
			t.Skipf("SKIPPED: %s is not on PATH: %s did not run (install Node.js 20.19+, or set SMARTGATE_REQUIRE_NODE=1 to make this a failure)", tool, what)
		}
	}
	dir := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "node_modules" {
				return fs.SkipDir
			}
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying e2e/%s: %v", src, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--prefer-offline")
	cmd.Dir = dir
	cmd.Env = nodeEnv()
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in a copy of e2e/%s: %v\n%s", src, err, out)
	}
	return dir
}

// runNode runs `node SCRIPT` in dir with extra environment, bounded.
func runNode(t *testing.T, dir, script string, extra ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Dir = dir
	cmd.Env = nodeEnv(extra...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s: %v\nstdout:\n%s\nstderr:\n%s", script, err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

// nodeResult is one entry of backend.mjs's results.
type nodeResult struct {
	Name             string `json:"name"`
	OK               bool   `json:"ok"`
	Status           int    `json:"status"`
	Scope            string `json:"scope"`
	AccessToken      string `json:"access_token"`
	ExpiresIn        int64  `json:"expires_in"`
	TokenType        string `json:"token_type"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	LibraryError     string `json:"library_error"` // the library's own error code, when it hid the OAuth error
}

// TestNodeBackendServices: openid-client (OpenID Certified RP library) and
// jose, from npm, get tokens with private_key_jwt (RS384 and ES384) after
// RFC 8414 discovery; the tokens introspect active with the right scope.
func TestNodeBackendServices(t *testing.T) {
	t.Parallel()
	dir := nodeProject(t)
	s := startDev(t)
	rsKey := newRSAKey(t, "node-rs384", "RS384")
	ecKey := newECKey(t, "node-es384")
	backend := s.createClient(t, "node backend", "--type", "confidential-asymmetric",
		"--jwks-file", writeJWKSFile(t, rsKey, ecKey), "--scope", "system/Patient.rs system/Observation.rs")
	rsc := s.createClient(t, "resource server", "--type", "confidential-symmetric", "--scope", "system/Patient.rs", "--introspect-any")
	rsCreds := creds{id: rsc.ClientID, secret: rsc.ClientSecret}

	out := runNode(t, dir, "backend.mjs",
		"ISSUER="+s.URL, "CLIENT_ID="+backend.ClientID, "SCOPE=system/Patient.rs system/Condition.rs",
		"RS384_KID="+rsKey.kid, "RS384_KEY="+rsKey.pkcs8PEM(t), // PKCS#8 PEM
		"ES384_KID="+ecKey.kid, "ES384_KEY="+string(ecKey.privateJWK(t)), // JWK JSON
	)
	var doc struct {
		Metadata map[string]any `json:"metadata"`
		Results  []nodeResult   `json:"results"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("backend.mjs output is not JSON: %v\n%s", err, out)
	}

	// What openid-client discovered (RFC 8414).
	md := doc.Metadata
	if md["issuer"] != s.URL || md["token_endpoint"] != s.tokenURL() {
		t.Errorf("discovered issuer %v token_endpoint %v; want %s and %s", md["issuer"], md["token_endpoint"], s.URL, s.tokenURL())
	}
	for field, want := range map[string][]string{
		"token_endpoint_auth_methods_supported":            {"private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": {"RS384", "ES384"},
		"grant_types_supported":                            {"client_credentials"},
	} {
		list, _ := md[field].([]any)
		for _, w := range want {
			if !slices.Contains(list, any(w)) {
				t.Errorf("discovery %s = %v lacks %s", field, md[field], w)
			}
		}
	}

	byName := map[string]nodeResult{}
	for _, r := range doc.Results {
		byName[r.Name] = r
	}
	for _, name := range []string{"openid-client RS384", "openid-client ES384", "jose SignJWT RS384", "jose SignJWT ES384"} {
		r, ok := byName[name]
		if !ok {
			t.Errorf("%s: no result in %s", name, out)
			continue
		}
		if !r.OK {
			t.Errorf("%s: token request failed: HTTP %d %s: %s", name, r.Status, r.Error, r.ErrorDescription)
			continue
		}
		// Scope narrowing: system/Condition.rs is not registered.
		if r.Scope != "system/Patient.rs" || r.ExpiresIn != 300 || !strings.EqualFold(r.TokenType, "bearer") {
			t.Errorf("%s: scope %q expires_in %d token_type %q; want system/Patient.rs, 300, Bearer", name, r.Scope, r.ExpiresIn, r.TokenType)
		}
		wantActive(t, s.URL, rsCreds, r.AccessToken, "system/Patient.rs", backend.ClientID)
	}

	// openid-client's default assertion has aud = the issuer, not the token
	// endpoint SMART Backend Services requires: refused, naming the rule.
	if r, ok := byName["openid-client default aud"]; !ok {
		t.Errorf("no result for openid-client's default assertion: %s", out)
	} else if r.OK || r.Status != 401 || r.Error != "invalid_client" || !containsAll(r.ErrorDescription, "aud", s.tokenURL()) {
		t.Errorf("openid-client default assertion (aud = issuer): want 401 invalid_client naming aud and %s; got %+v", s.tokenURL(), r)
	} else {
		t.Logf("interoperability note: openid-client 6 / oauth4webapi 3 sign private_key_jwt assertions with aud = the issuer by default; smartgate refuses them (%s)", r.ErrorDescription)
		if r.LibraryError != "" {
			t.Logf("interoperability note: openid-client reported the refusal as %s (the 401 carries WWW-Authenticate: %s challenge), not as the invalid_client error in the body", r.LibraryError, "a Basic")
		}
	}
}
