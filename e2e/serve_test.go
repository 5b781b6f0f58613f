package e2e

import (
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// privateMembers are the JWK members that hold private key material
// (RFC 7518 §6.2.2, §6.3.2, §6.4.1). None may ever appear in a JWKS.
var privateMembers = map[string]bool{"d": true, "p": true, "q": true, "dp": true, "dq": true, "qi": true, "k": true, "oth": true}

// findPrivate walks any JSON value and returns the paths of private members.
func findPrivate(path string, v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for name, sub := range v {
			if privateMembers[name] {
				out = append(out, path+"."+name)
			}
			out = append(out, findPrivate(path+"."+name, sub)...)
		}
	case []any:
		for i, sub := range v {
			out = append(out, findPrivate(path+"["+strconv.Itoa(i)+"]", sub)...)
		}
	}
	return out
}

func b64len(t *testing.T, what, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		t.Fatalf("%s %q is not non-empty base64url without padding: %v", what, s, err)
	}
	return b
}

func TestDevServeJWKS(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data") // dev mode creates it
	s := serve(t, baseEnv(), "--dev", "--listen", "127.0.0.1:0", "--data-dir", dir)

	resp, body := get(t, s.URL+"/oauth2/jwks")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /oauth2/jwks: status %d, want 200: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Errorf("JWKS Content-Type %q, want application/jwk-set+json", ct)
	}
	cc := resp.Header.Get("Cache-Control")
	if m := regexp.MustCompile(`max-age=([0-9]+)`).FindStringSubmatch(cc); m == nil || m[1] == "0" {
		t.Errorf("JWKS Cache-Control %q, want a positive max-age=", cc)
	}
	if id := resp.Header.Get("X-Request-Id"); id == "" {
		t.Errorf("JWKS response has no X-Request-Id header")
	}

	var raw any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("JWKS is not JSON: %v: %s", err, body)
	}
	if priv := findPrivate("$", raw); len(priv) > 0 {
		t.Errorf("JWKS publishes private key members %v: %s", priv, body)
	}
	var set jwkSet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want 2 (one ES256, one RS256): %s", len(set.Keys), body)
	}
	seen := map[string]bool{}
	algs := map[string]int{}
	for _, k := range set.Keys {
		if k.Kid == "" || seen[k.Kid] {
			t.Errorf("kid %q is empty or repeated: %s", k.Kid, body)
		}
		seen[k.Kid] = true
		algs[k.Alg]++
		if k.Use != "sig" {
			t.Errorf("key %s: use %q, want sig", k.Kid, k.Use)
		}
		switch k.Alg {
		case "ES256":
			if k.Kty != "EC" || k.Crv != "P-256" {
				t.Errorf("ES256 key %s: kty %q crv %q, want EC P-256", k.Kid, k.Kty, k.Crv)
			}
			if x, y := b64len(t, "x", k.X), b64len(t, "y", k.Y); len(x) != 32 || len(y) != 32 {
				t.Errorf("ES256 key %s: x and y are %d and %d bytes, want 32", k.Kid, len(x), len(y))
			}
		case "RS256":
			if k.Kty != "RSA" {
				t.Errorf("RS256 key %s: kty %q, want RSA", k.Kid, k.Kty)
			}
			if bits := new(big.Int).SetBytes(b64len(t, "n", k.N)).BitLen(); bits < 2048 {
				t.Errorf("RS256 key %s: modulus of %d bits, want at least 2048", k.Kid, bits)
			}
			b64len(t, "e", k.E)
		default:
			t.Errorf("key %s: unexpected alg %q", k.Kid, k.Alg)
		}
	}
	if algs["ES256"] != 1 || algs["RS256"] != 1 {
		t.Errorf("JWKS algorithms %v, want exactly one ES256 and one RS256", algs)
	}

	// Operations endpoints.
	resp, body = get(t, s.URL+"/healthz")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
		t.Errorf("/healthz: %d %s, want 200 with status ok", resp.StatusCode, body)
	}
	if code, status := readyz(t, s.URL); code != http.StatusOK || status != "ready" {
		t.Errorf("/readyz: %d %q, want 200 ready", code, status)
	}
	resp, body = get(t, s.URL+"/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: status %d", resp.StatusCode)
	}
	for _, want := range []string{
		"smartgate_http_requests_total{",
		`go_sql_open_connections{db_name="sqlite_writer"}`,
		`go_sql_open_connections{db_name="sqlite_readers"}`,
		`go_sql_open_connections{db_name="sqlite_audit"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Dev-mode files: a private data dir, the SQLite database and the KEK.
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("data dir %s: %v, mode %v; want mode 0700", dir, err, st.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, "smartgate.db")); err != nil {
		t.Errorf("dev mode made no SQLite database: %v", err)
	}
	kekFile := filepath.Join(dir, "kek")
	st, err := os.Stat(kekFile)
	if err != nil {
		t.Fatalf("dev mode made no KEK file: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("KEK file mode %04o, want 0600", st.Mode().Perm())
	}
	text, _ := os.ReadFile(kekFile)
	if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(text))); err != nil || len(raw) != 32 {
		t.Errorf("KEK file does not hold 32 bytes in standard base64 (%d bytes, %v)", len(raw), err)
	}
	if strings.Contains(s.stderr.String(), strings.TrimSpace(string(text))) {
		t.Errorf("the KEK appears in the log stream")
	}

	// Dev mode refuses a non-loopback address, by flag or by SMARTGATE_DEV.
	other := filepath.Join(t.TempDir(), "data")
	r := refused(t, baseEnv(), "serve", "--dev", "--listen", "0.0.0.0:0", "--data-dir", other)
	if !strings.Contains(r.stderr, "listen") || !strings.Contains(r.stderr, "loopback") {
		t.Errorf("want an error naming listen and loopback; got %s", r)
	}
	r = refused(t, baseEnv("SMARTGATE_DEV=true"), "serve", "--listen", "0.0.0.0:0", "--data-dir", other)
	if !strings.Contains(r.stderr, "listen") || !strings.Contains(r.stderr, "loopback") {
		t.Errorf("SMARTGATE_DEV=true: want an error naming listen and loopback; got %s", r)
	}
}

func TestInsecureIssuerRefused(t *testing.T) {
	t.Parallel()
	env := baseEnv("SMARTGATE_KEK=" + newKEK(t))
	dir := t.TempDir()

	r := refused(t, env, "serve", "--issuer", "http://ehr.example.org", "--listen", "127.0.0.1:0", "--data-dir", dir)
	if !strings.Contains(r.stderr, "issuer") || !strings.Contains(r.stderr, "insecure_issuer") {
		t.Errorf("http issuer: want an error naming issuer and docs/errors.md#insecure_issuer; got %s", r)
	}
	if strings.Contains(r.stdout, "ready") {
		t.Errorf("http issuer: the server announced itself: %s", r)
	}

	r = refused(t, env, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir)
	if !strings.Contains(r.stderr, "issuer: required") {
		t.Errorf("no issuer: want an error naming issuer; got %s", r)
	}

	r = refused(t, env, "serve", "--issuer", "https://ehr.example.org", "--listen", "127.0.0.1:0", "--data-dir", dir)
	if !strings.Contains(r.stderr, "tls.cert_file") && !strings.Contains(r.stderr, "trusted_proxies") {
		t.Errorf("https issuer without TLS: want an error naming tls.cert_file or trusted_proxies; got %s", r)
	}
	if strings.Contains(r.stderr, "insecure_issuer") {
		t.Errorf("https issuer without TLS is not the insecure_issuer case: %s", r)
	}
}

func TestWorldReadableKEKRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kekFile := filepath.Join(dir, "kek")
	if err := os.WriteFile(kekFile, []byte(newKEK(t)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(kekFile, 0o644); err != nil { // not subject to umask
		t.Fatal(err)
	}
	env := baseEnv()

	r := refused(t, env, "serve", "--dev", "--data-dir", dir, "--listen", "127.0.0.1:0")
	if !strings.Contains(r.stderr, "chmod 600") || !strings.Contains(r.stderr, kekFile) {
		t.Errorf("serve: want an error naming %s and chmod 600; got %s", kekFile, r)
	}
	r = refused(t, env, "key", "list", "--dev", "--data-dir", dir)
	if !strings.Contains(r.stderr, "chmod 600") {
		t.Errorf("key list: want an error naming chmod 600; got %s", r)
	}

	r = refused(t, env, "doctor", "--dev", "--data-dir", dir)
	if !regexp.MustCompile(`(?m)^FAIL\s+kek\s`).MatchString(r.stdout) {
		t.Errorf("doctor: want a FAIL line for kek; got %s", r)
	}
	r = refused(t, env, "doctor", "--dev", "--data-dir", dir, "--output", "json")
	var rs []struct{ Check, Status string }
	if err := json.Unmarshal([]byte(r.stdout), &rs); err != nil {
		t.Fatalf("doctor --output json: %v\n%s", err, r)
	}
	found := false
	for _, c := range rs {
		if c.Check == "kek" {
			found = true
			if c.Status != "FAIL" {
				t.Errorf("doctor --output json: kek status %q, want FAIL", c.Status)
			}
		}
	}
	if !found {
		t.Errorf("doctor --output json has no kek check: %s", r.stdout)
	}

	// Refusing is all it does: the file is left for the operator to fix.
	if st, err := os.Stat(kekFile); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("the KEK file was changed: %v %v", err, st.Mode())
	}
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	// SMARTGATE_DEV=true is the same as --dev.
	s := serve(t, baseEnv("SMARTGATE_DEV=true"), "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data"))
	if _, _, err := fetchJWKS(s.URL); err != nil {
		t.Fatalf("JWKS before shutdown: %v", err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !s.waitExit(exitTimeout) {
		t.Fatalf("no exit within %s of SIGTERM: %s", exitTimeout, s.describe())
	}
	if code := s.exitCode(); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0: %s", code, s.describe())
	}
	if !strings.Contains(s.stderr.String(), "shutting down") {
		t.Errorf("the log does not say it is shutting down: %s", s.stderr.String())
	}
	c := &http.Client{Timeout: 2 * time.Second}
	if resp, err := c.Get(s.URL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("%s still answers after the process exited", s.URL)
	}
}
