// Command load is the token-endpoint load generator of bench/peers.sh: it
// sends OAuth token or introspection requests to one server on loopback
// with c concurrent keep-alive clients, bounded by a request count and a
// duration, and prints one JSON line:
//
//	{"target", "mode", "requests", "errors", "rps", "p50_ms", "p99_ms",
//	 "server_cpu_us_per_req", "server_rss_mb", "client_cpu_us_per_req", ...}
//
// Modes:
//
//	cc-secret     client_credentials, client_secret_basic (or -auth post)
//	cc-jwt-rs384  client_credentials, private_key_jwt, assertion signed RS384
//	cc-jwt-es384  client_credentials, private_key_jwt, assertion signed ES384
//	introspect    RFC 7662 introspection of tokens read from -tokens, cycled
//
// Every assertion is signed fresh per request (iss = sub = client_id, aud =
// the token URL, exp = now + 4 min, a random jti), so its signing cost is
// part of this process's CPU ("client_cpu_us_per_req"), never the server's.
//
// The server's CPU comes from /proc/PID/stat (utime + stime of every thread
// of -pid) read at the start and the end of the measured window, after the
// warm-up; its RSS is VmRSS from /proc/PID/status at the end of the window.
// Only loopback URLs are accepted. A response counts as an error unless it
// is 200 and, with -check (the default), its body is what the mode expects:
// an access_token for the token modes, "active": true for introspect.
//
//	load keygen -alg RS384|ES384 -kid KID -key FILE -jwks FILE
//
// writes a new private key (PKCS #8 PEM) and its public JWKS for a
// private_key_jwt client.
package main

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const (
	assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	maxRequests   = 5_000_000        // hard bound on -n
	maxDuration   = 10 * time.Minute // hard bound on -d and -warmup
	clockTicks    = 100              // USER_HZ: the unit of /proc/PID/stat times on Linux
	errorsShown   = 5
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "keygen" {
		if err := keygen(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "load keygen:", err)
			os.Exit(2)
		}
		return
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

type options struct {
	url, target, mode        string
	c, n                     int
	d, warmup                time.Duration
	clientID, secret, auth   string
	keyFile, kid, aud, scope string
	tokensFile, saveTokens   string
	pid                      int
	check                    bool
	timeout                  time.Duration
	signer                   jose.Signer
	tokens                   []string
}

// Result is the one JSON line printed.
type Result struct {
	Target            string  `json:"target"`
	Mode              string  `json:"mode"`
	Concurrency       int     `json:"concurrency"`
	Requests          int64   `json:"requests"`
	Errors            int64   `json:"errors"`
	Seconds           float64 `json:"seconds"`
	RPS               float64 `json:"rps"`
	P50ms             float64 `json:"p50_ms"`
	P90ms             float64 `json:"p90_ms"`
	P99ms             float64 `json:"p99_ms"`
	MaxMs             float64 `json:"max_ms"`
	ServerCPUusPerReq float64 `json:"server_cpu_us_per_req"`
	ServerCPUCores    float64 `json:"server_cpu_cores"`
	ServerRSSMB       float64 `json:"server_rss_mb"`
	ClientCPUusPerReq float64 `json:"client_cpu_us_per_req"`
	// OtherCPUCores is the machine's busy CPU (all cores, from /proc/stat)
	// over the window less the server's and this process's: anything else
	// running here that competed with the measurement. StealCores is the
	// time the hypervisor gave this VM's CPUs to others.
	OtherCPUCores float64 `json:"other_cpu_cores"`
	StealCores    float64 `json:"steal_cores"`
	TokenPool     int     `json:"token_pool,omitempty"`
}

func run(args []string) error {
	var o options
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.StringVar(&o.url, "url", "", "endpoint URL to POST to (token or introspection endpoint); loopback only")
	fs.StringVar(&o.target, "target", "", "name of the target in the output (default: the URL's host)")
	fs.StringVar(&o.mode, "mode", "cc-secret", "cc-secret, cc-jwt-rs384, cc-jwt-es384 or introspect")
	fs.IntVar(&o.c, "c", 16, "concurrent clients (one keep-alive connection each)")
	fs.IntVar(&o.n, "n", 0, fmt.Sprintf("most requests in the measured window (0: only -d bounds it; at most %d)", maxRequests))
	fs.DurationVar(&o.d, "d", 10*time.Second, "longest measured window (at most 10m)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "warm-up before the measured window (not counted)")
	fs.StringVar(&o.clientID, "client-id", "", "client_id (for introspect: the caller's; empty sends no client authentication)")
	fs.StringVar(&o.secret, "client-secret", "", "client secret (cc-secret; introspect)")
	fs.StringVar(&o.auth, "auth", "basic", "how to send a secret: basic (client_secret_basic) or post (client_secret_post)")
	fs.StringVar(&o.keyFile, "key", "", "private key PEM for client assertions (cc-jwt-*)")
	fs.StringVar(&o.kid, "kid", "", "kid header of client assertions")
	fs.StringVar(&o.aud, "aud", "", "aud of client assertions (default: -url)")
	fs.StringVar(&o.scope, "scope", "system/Patient.rs", "scope parameter of token requests (empty: none sent)")
	fs.StringVar(&o.tokensFile, "tokens", "", "file of tokens to introspect, one a line, cycled (introspect)")
	fs.StringVar(&o.saveTokens, "save-tokens", "", "write every access_token issued in the measured window to this file, one a line (token modes)")
	fs.IntVar(&o.pid, "pid", 0, "server process id: its CPU and RSS are read from /proc (0: not measured)")
	fs.BoolVar(&o.check, "check", true, "count a 200 whose body is not what the mode expects as an error")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := o.validate(); err != nil {
		return err
	}
	res, err := o.load()
	if err != nil {
		return err
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	return nil
}

func (o *options) validate() error {
	if o.url == "" {
		return errors.New("-url is required")
	}
	u, err := url.Parse(o.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("-url %q is not an http(s) URL", o.url)
	}
	if err := loopbackOnly(u.Hostname()); err != nil {
		return err
	}
	if o.target == "" {
		o.target = u.Host
	}
	if o.c < 1 || o.c > 1024 {
		return fmt.Errorf("-c %d: use 1 to 1024", o.c)
	}
	if o.n < 0 || o.n > maxRequests {
		return fmt.Errorf("-n %d: use 0 to %d", o.n, maxRequests)
	}
	if o.d <= 0 || o.d > maxDuration {
		return fmt.Errorf("-d %s: use a positive duration of at most %s", o.d, maxDuration)
	}
	if o.warmup < 0 || o.warmup > maxDuration {
		return fmt.Errorf("-warmup %s: use 0 to %s", o.warmup, maxDuration)
	}
	if o.auth != "basic" && o.auth != "post" {
		return fmt.Errorf("-auth %q: use basic or post", o.auth)
	}
	if o.aud == "" {
		o.aud = o.url
	}
	switch o.mode {
	case "cc-secret":
		if o.clientID == "" || o.secret == "" {
			return errors.New("cc-secret needs -client-id and -client-secret")
		}
	case "cc-jwt-rs384", "cc-jwt-es384":
		if o.clientID == "" || o.keyFile == "" {
			return fmt.Errorf("%s needs -client-id and -key", o.mode)
		}
		alg := jose.RS384
		if o.mode == "cc-jwt-es384" {
			alg = jose.ES384
		}
		key, err := readKey(o.keyFile)
		if err != nil {
			return err
		}
		opts := (&jose.SignerOptions{}).WithType("JWT")
		if o.kid != "" {
			opts = opts.WithHeader("kid", o.kid)
		}
		o.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
		if err != nil {
			return fmt.Errorf("-key %s with %s: %w", o.keyFile, alg, err)
		}
	case "introspect":
		if o.tokensFile == "" {
			return errors.New("introspect needs -tokens")
		}
		if o.saveTokens != "" {
			return errors.New("-save-tokens is for the token modes")
		}
		if o.clientID != "" && o.secret == "" {
			return errors.New("introspect with -client-id needs -client-secret")
		}
		toks, err := readLines(o.tokensFile)
		if err != nil {
			return err
		}
		if len(toks) == 0 {
			return fmt.Errorf("-tokens %s holds no token", o.tokensFile)
		}
		o.tokens = toks
	default:
		return fmt.Errorf("-mode %q: use cc-secret, cc-jwt-rs384, cc-jwt-es384 or introspect", o.mode)
	}
	if o.pid != 0 {
		if _, err := procCPU(o.pid); err != nil {
			return fmt.Errorf("-pid %d: %w", o.pid, err)
		}
	}
	return nil
}

// loopbackOnly refuses any host that is not a loopback address (or a name
// that resolves only to loopback addresses).
func loopbackOnly(host string) error {
	ips := []net.IP{net.ParseIP(host)}
	if ips[0] == nil {
		addrs, err := net.LookupIP(host)
		if err != nil || len(addrs) == 0 {
			return fmt.Errorf("host %q does not resolve: %v", host, err)
		}
		ips = addrs
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("host %q (%s) is not a loopback address; this load generator targets only this machine", host, ip)
		}
	}
	return nil
}

// worker state shared by all clients of one phase.
type phase struct {
	o        *options
	client   *http.Client
	deadline time.Time
	budget   atomic.Int64 // requests left; counts down below zero when spent
	next     atomic.Uint64
	errs     atomic.Int64
	shown    atomic.Int64
	record   bool

	mu    sync.Mutex
	saved *bufio.Writer
}

func (o *options) load() (*Result, error) {
	tr := &http.Transport{
		Proxy:               nil, // never through a proxy: loopback only
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        o.c,
		MaxIdleConnsPerHost: o.c,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: o.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	if o.warmup > 0 {
		w := &phase{o: o, client: client, deadline: time.Now().Add(o.warmup)}
		w.budget.Store(maxRequests)
		w.run()
		if w.errs.Load() > 0 {
			fmt.Fprintf(os.Stderr, "load: %s %s: %d errors during the warm-up\n", o.target, o.mode, w.errs.Load())
		}
	}

	p := &phase{o: o, client: client, record: true}
	budget := int64(o.n)
	if budget == 0 {
		budget = maxRequests
	}
	p.budget.Store(budget)
	if o.saveTokens != "" {
		f, err := os.Create(o.saveTokens)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		p.saved = bufio.NewWriter(f)
	}

	var cpu0, cpu1 time.Duration
	var err error
	if o.pid != 0 {
		if cpu0, err = procCPU(o.pid); err != nil {
			return nil, err
		}
	}
	self0 := selfCPU()
	busy0, steal0, statErr := machineCPU()
	start := time.Now()
	p.deadline = start.Add(o.d)
	lat := p.run()
	elapsed := time.Since(start)
	self1 := selfCPU()
	busy1, steal1, statErr1 := machineCPU()
	res := &Result{Target: o.target, Mode: o.mode, Concurrency: o.c, Seconds: round(elapsed.Seconds(), 3), TokenPool: len(o.tokens)}
	if o.pid != 0 {
		if cpu1, err = procCPU(o.pid); err != nil {
			return nil, err
		}
		rss, err := procRSS(o.pid)
		if err != nil {
			return nil, err
		}
		res.ServerRSSMB = round(float64(rss)/(1<<20), 1)
	}
	if p.saved != nil {
		if err := p.saved.Flush(); err != nil {
			return nil, err
		}
	}

	n := int64(len(lat))
	res.Requests = n
	res.Errors = p.errs.Load()
	if n == 0 {
		return res, errors.New("no request completed")
	}
	slices.Sort(lat)
	res.RPS = round(float64(n)/elapsed.Seconds(), 0)
	res.P50ms = ms(quantile(lat, 0.50))
	res.P90ms = ms(quantile(lat, 0.90))
	res.P99ms = ms(quantile(lat, 0.99))
	res.MaxMs = ms(lat[n-1])
	if o.pid != 0 {
		res.ServerCPUusPerReq = round(float64((cpu1-cpu0).Microseconds())/float64(n), 1)
		res.ServerCPUCores = round((cpu1-cpu0).Seconds()/elapsed.Seconds(), 2)
	}
	res.ClientCPUusPerReq = round(float64((self1-self0).Microseconds())/float64(n), 1)
	if statErr == nil && statErr1 == nil {
		other := (busy1 - busy0) - (self1 - self0) - (cpu1 - cpu0)
		res.OtherCPUCores = round(max(0, other.Seconds())/elapsed.Seconds(), 2)
		res.StealCores = round((steal1-steal0).Seconds()/elapsed.Seconds(), 2)
	}
	return res, nil
}

// run drives the phase with o.c clients until its deadline or budget ends,
// and returns every request's latency (when recording).
func (p *phase) run() []time.Duration {
	var wg sync.WaitGroup
	lats := make([][]time.Duration, p.o.c)
	for i := range p.o.c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			if p.record {
				mine = make([]time.Duration, 0, 4096)
			}
			buf := new(bytes.Buffer)
			for time.Now().Before(p.deadline) && p.budget.Add(-1) >= 0 {
				t0 := time.Now()
				p.one(buf)
				if p.record {
					mine = append(mine, time.Since(t0))
				}
			}
			lats[i] = mine
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return all
}

// one sends one request and reads the whole response.
func (p *phase) one(buf *bytes.Buffer) {
	o := p.o
	form := url.Values{}
	basic := false
	switch o.mode {
	case "cc-secret":
		form.Set("grant_type", "client_credentials")
		if o.auth == "basic" {
			basic = true
		} else {
			form.Set("client_id", o.clientID)
			form.Set("client_secret", o.secret)
		}
	case "cc-jwt-rs384", "cc-jwt-es384":
		form.Set("grant_type", "client_credentials")
		a, err := o.assertion()
		if err != nil {
			p.fail(0, "signing the assertion: "+err.Error())
			return
		}
		form.Set("client_assertion_type", assertionType)
		form.Set("client_assertion", a)
	case "introspect":
		form.Set("token", o.tokens[(p.next.Add(1)-1)%uint64(len(o.tokens))])
		if o.clientID != "" {
			if o.auth == "basic" {
				basic = true
			} else {
				form.Set("client_id", o.clientID)
				form.Set("client_secret", o.secret)
			}
		}
	}
	if o.mode != "introspect" && o.scope != "" {
		form.Set("scope", o.scope)
	}
	req, err := http.NewRequest(http.MethodPost, o.url, strings.NewReader(form.Encode()))
	if err != nil {
		p.fail(0, err.Error())
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic {
		// RFC 6749 §2.3.1: form-urlencode, then Basic.
		req.SetBasicAuth(url.QueryEscape(o.clientID), url.QueryEscape(o.secret))
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.fail(0, err.Error())
		return
	}
	buf.Reset()
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		p.fail(resp.StatusCode, "reading the body: "+err.Error())
		return
	}
	if resp.StatusCode != http.StatusOK {
		p.fail(resp.StatusCode, buf.String())
		return
	}
	if !o.check && p.saved == nil {
		return
	}
	if o.mode == "introspect" {
		var r struct {
			Active bool `json:"active"`
		}
		if json.Unmarshal(buf.Bytes(), &r) != nil || !r.Active {
			p.fail(resp.StatusCode, "not an active token: "+buf.String())
		}
		return
	}
	var r struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(buf.Bytes(), &r) != nil || r.AccessToken == "" {
		p.fail(resp.StatusCode, "no access_token: "+buf.String())
		return
	}
	if p.saved != nil && p.record {
		p.mu.Lock()
		p.saved.WriteString(r.AccessToken)
		p.saved.WriteByte('\n')
		p.mu.Unlock()
	}
}

func (p *phase) fail(status int, msg string) {
	p.errs.Add(1)
	if p.shown.Add(1) <= errorsShown {
		if len(msg) > 400 {
			msg = msg[:400] + "..."
		}
		fmt.Fprintf(os.Stderr, "load: %s %s: status %d: %s\n", p.o.target, p.o.mode, status, strings.TrimSpace(msg))
	}
}

// assertion signs a fresh RFC 7523 client assertion.
func (o *options) assertion() (string, error) {
	var j [16]byte
	_, _ = rand.Read(j[:])
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{
		"iss": o.clientID, "sub": o.clientID, "aud": o.aud,
		"iat": now.Unix(), "exp": now.Add(4 * time.Minute).Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(j[:]),
	})
	jws, err := o.signer.Sign(claims)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return round(float64(d)/1e6, 2) }

func round(v float64, places int) float64 {
	s := strconv.FormatFloat(v, 'f', places, 64)
	r, _ := strconv.ParseFloat(s, 64)
	return r
}

// procCPU is utime + stime of every thread of pid.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name (which may hold spaces and
	// parentheses) start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	// f[0] is the state (field 3); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// machineCPU is the busy time of all CPUs (user, nice, system, irq,
// softirq; guest time is inside user) and the steal time, from /proc/stat.
func machineCPU() (busy, steal time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, errors.New("/proc/stat: unexpected format")
	}
	v := make([]int64, 8)
	for i := range v {
		if v[i], err = strconv.ParseInt(f[i+1], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
	}
	// user nice system idle iowait irq softirq steal
	ticks := v[0] + v[1] + v[2] + v[5] + v[6]
	return time.Duration(ticks) * time.Second / clockTicks, time.Duration(v[7]) * time.Second / clockTicks, nil
}

// procRSS is VmRSS of pid, in bytes.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb << 10, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// selfCPU is this process's user + system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var k any
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("%s: PEM block %q is not a private key", path, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: unsupported key type %T", path, k)
	}
	return s, nil
}

// keygen writes a private key and its public JWKS.
func keygen(args []string) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	alg := fs.String("alg", "", "RS384 (RSA 2048) or ES384 (P-384)")
	kid := fs.String("kid", "", "key id")
	keyOut := fs.String("key", "", "private key file to write (PKCS #8 PEM)")
	jwksOut := fs.String("jwks", "", "public JWKS file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kid == "" || *keyOut == "" || *jwksOut == "" {
		return errors.New("-kid, -key and -jwks are required")
	}
	var priv crypto.Signer
	var err error
	switch *alg {
	case "RS384":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		return fmt.Errorf("-alg %q: use RS384 or ES384", *alg)
	}
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*keyOut, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv.Public(), KeyID: *kid, Algorithm: *alg, Use: "sig"}}}
	b, err := json.Marshal(set)
	if err != nil {
		return err
	}
	return os.WriteFile(*jwksOut, append(b, '\n'), 0o644)
}
