package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Bounds of every wait. They are deadlines for hung processes, not
// expectations of speed.
const (
	startTimeout   = 20 * time.Second // a server prints its ready line
	commandTimeout = 60 * time.Second // a CLI command runs to completion
	exitTimeout    = 20 * time.Second // a process exits after a signal
)

// syncBuffer is a bytes.Buffer safe to write from exec's copying goroutine
// while a test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// baseEnv is this process's environment without any SMARTGATE_* setting,
// so the tests do not depend on the developer's shell.
func baseEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SMARTGATE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// newKEK returns a fresh KEK: 32 random bytes in standard base64.
func newKEK(t *testing.T) string {
	t.Helper()
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b[:])
}

// result is how a finished command ended.
type result struct {
	args           []string
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("smartgate %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// smartgate runs the binary to completion (bounded by commandTimeout) in a
// fresh working directory, with env as its whole environment.
func smartgate(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		t.Fatalf("smartgate %s did not finish within %s\nstderr:\n%s", strings.Join(args, " "), commandTimeout, r.stderr)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("smartgate %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// mustRun runs a command that must succeed.
func mustRun(t *testing.T, env []string, args ...string) result {
	t.Helper()
	r := smartgate(t, env, args...)
	if r.code != 0 {
		t.Fatalf("want exit 0; got %s", r)
	}
	return r
}

// proc is a smartgate process running in the background. It is killed when
// the test ends.
type proc struct {
	args           []string
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{} // closed when the process has exited
	state          *os.ProcessState
	waitErr        error
}

// start starts smartgate in the background and registers its kill.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{args: args, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = t.TempDir()
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting smartgate %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		p.state = p.cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if !p.waitExit(exitTimeout) {
			t.Errorf("smartgate %s (pid %d) did not exit after SIGKILL", strings.Join(args, " "), p.cmd.Process.Pid)
		}
	})
	return p
}

// kill sends SIGKILL unless the process has already exited.
func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
	}
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitExit waits at most d for the process to end.
func (p *proc) waitExit(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// exitCode is the exit status of an ended process (-1 when a signal ended it).
func (p *proc) exitCode() int { return p.state.ExitCode() }

func (p *proc) describe() string {
	return fmt.Sprintf("smartgate %s\nstdout:\n%s\nstderr:\n%s", strings.Join(p.args, " "), p.stdout.String(), p.stderr.String())
}

var readyLine = regexp.MustCompile(`(?m)^smartgate is ready at (http://127\.0\.0\.1:[0-9]+) \(JWKS: (\S+)\)$`)

// server is a running `smartgate serve`.
type server struct {
	*proc
	URL string // the issuer, http://127.0.0.1:PORT
}

// serve starts `smartgate serve ARGS` and waits for its ready line.
func serve(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	return waitReady(t, start(t, env, append([]string{"serve"}, args...)...))
}

// waitReady waits for a started server's ready line.
func waitReady(t *testing.T, p *proc) *server {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		if m := readyLine.FindStringSubmatch(p.stdout.String()); m != nil {
			if want := m[1] + "/oauth2/jwks"; m[2] != want {
				t.Fatalf("ready line names JWKS %q, want %q", m[2], want)
			}
			if n := strings.Count(p.stdout.String(), "smartgate is ready at"); n != 1 {
				t.Fatalf("ready line printed %d times:\n%s", n, p.stdout.String())
			}
			return &server{proc: p, URL: m[1]}
		}
		if p.exited() {
			t.Fatalf("server exited (%v) before it was ready: %s", p.waitErr, p.describe())
		}
		if time.Now().After(deadline) {
			t.Fatalf("server printed no ready line within %s: %s", startTimeout, p.describe())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var client = &http.Client{Timeout: 5 * time.Second}

// get fetches url; a transport error fails the test.
func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := tryGet(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, body
}

func tryGet(url string) (*http.Response, []byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// waitFor polls cond every 50ms until it holds, failing the test with cond's
// last explanation after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// jwk is the part of a JSON Web Key the tests look at.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

type jwkSet struct {
	Keys []jwk `json:"keys"`
}

// kids lists the set's key ids in order.
func (s jwkSet) kids() []string {
	var out []string
	for _, k := range s.Keys {
		out = append(out, k.Kid)
	}
	return out
}

func (s jwkSet) has(kid string) bool {
	for _, k := range s.Keys {
		if k.Kid == kid {
			return true
		}
	}
	return false
}

// fetchJWKS returns the server's JWKS, or an error (any status but 200, or
// a body that is not a key set).
func fetchJWKS(base string) (jwkSet, []byte, error) {
	resp, body, err := tryGet(base + "/oauth2/jwks")
	if err != nil {
		return jwkSet{}, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return jwkSet{}, body, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	var set jwkSet
	if err := json.Unmarshal(body, &set); err != nil {
		return jwkSet{}, body, fmt.Errorf("JWKS is not JSON: %v: %s", err, body)
	}
	return set, body, nil
}

func mustJWKS(t *testing.T, base string) jwkSet {
	t.Helper()
	set, _, err := fetchJWKS(base)
	if err != nil {
		t.Fatalf("JWKS of %s: %v", base, err)
	}
	return set
}

// waitJWKSHas waits until the server publishes every kid in want.
func waitJWKSHas(t *testing.T, base string, timeout time.Duration, want ...string) jwkSet {
	t.Helper()
	var last jwkSet
	waitFor(t, timeout, "JWKS of "+base+" publishes "+strings.Join(want, ", "), func() (bool, string) {
		set, _, err := fetchJWKS(base)
		if err != nil {
			return false, err.Error()
		}
		last = set
		for _, kid := range want {
			if !set.has(kid) {
				return false, fmt.Sprintf("kids %v", set.kids())
			}
		}
		return true, ""
	})
	return last
}

// keyInfo is one entry of `key list --output json`.
type keyInfo struct {
	KID    string `json:"kid"`
	Alg    string `json:"alg"`
	State  string `json:"state"`
	KEKID  string `json:"kek_id"`
	Usable bool   `json:"usable"`
}

func keyList(t *testing.T, env []string, args ...string) []keyInfo {
	t.Helper()
	r := mustRun(t, env, append([]string{"key", "list", "--output", "json"}, args...)...)
	var list []keyInfo
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("key list --output json is not a JSON array of keys: %v\n%s", err, r)
	}
	return list
}

// rotated is one entry of `key rotate --output json`.
type rotated struct {
	KID      string    `json:"kid"`
	Alg      string    `json:"alg"`
	ActiveAt time.Time `json:"active_at"`
}

// rotate runs `key rotate --output json ARGS` and returns the new keys,
// checking there is one ES256 and one RS256 key.
func rotate(t *testing.T, env []string, args ...string) []rotated {
	t.Helper()
	r := mustRun(t, env, append([]string{"key", "rotate", "--output", "json"}, args...)...)
	var out []rotated
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("key rotate --output json is not JSON: %v\n%s", err, r)
	}
	if len(out) != 2 || out[0].Alg != "ES256" || out[1].Alg != "RS256" || out[0].KID == "" || out[1].KID == "" || out[0].KID == out[1].KID {
		t.Fatalf("key rotate: want one new ES256 and one new RS256 key with distinct kids, got %+v", out)
	}
	return out
}

func kidsOf(rs []rotated) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.KID)
	}
	return out
}

// readyz fetches /readyz and returns its status code and "status" field.
func readyz(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, body := get(t, base+"/readyz")
	var doc struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("/readyz is not JSON: %v: %s", err, body)
	}
	return resp.StatusCode, doc.Status
}

// refused runs a command that must exit on its own, with a non-zero status,
// within exitTimeout (a server that started serving instead is killed).
func refused(t *testing.T, env []string, args ...string) result {
	t.Helper()
	p := start(t, env, args...)
	if !p.waitExit(exitTimeout) {
		p.kill()
		t.Fatalf("want a refusal; still running after %s: %s", exitTimeout, p.describe())
	}
	r := result{args: args, code: p.exitCode(), stdout: p.stdout.String(), stderr: p.stderr.String()}
	if r.code == 0 {
		t.Fatalf("want a non-zero exit status; got %s", r)
	}
	return r
}
