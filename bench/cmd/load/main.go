// Command load is the token-endpoint load generator of bench/peers.sh: it
// sends OAuth token or introspection requests, or whole browser flows, to
// one server on loopback with c concurrent keep-alive clients, bounded by
// a count and a duration, and prints one JSON line:
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
//	authcode      whole authorization-code flows (PKCE S256) of a public
//	              client with an existing login session and remembered
//	              consent; one "request" is one flow, counted when its code
//	              exchange answers (see flow.go)
//	refresh       refresh_token grants of a public client, each client its
//	              own chain of rotating refresh tokens
//	fhir-read, fhir-search, fhir-include, fhir-transaction
//	              FHIR requests read from -targets, each with its own
//	              bearer token (see fhir.go); -url is the server's base
//	export        one Bulk Data export of everything, timed from kick-off
//	              to the completed manifest, then the download of every
//	              file (see export.go); -url is the server's base
//
// In the browser-flow modes, "requests" and the per-request figures are
// per operation (a flow, a refresh), and "http_per_op" says how many HTTP
// requests one took. -authorize-url, -client-id (a public client),
// -redirect-uri and -login (smartgate, hydra or oidc-provider: how the
// first flow of each client signs in and consents, before the warm-up)
// set them up; -url is the token endpoint.
//
// Assertions (iss = sub = client_id, aud = the token URL, exp = signing
// time + 4 min, a random jti) are signed before the measured window, not
// inside it (-presign, the default): an RSA 2048 signature costs this
// machine's client 1.2-2 ms of CPU, and signing inside the window would take
// most of a core from whichever server is measured. The warm-up runs on a
// first pool of -warmup-assertions; its rate sizes the window's pool
// (rate x -d x 2, at most -max-assertions, signed within -sign-budget on
// every core), so the window is bounded by that count as well as by -d, and
// "ended_by" says which bound ended it. Every assertion is used once.
// -presign=false signs one per request inside the window instead, so that
// its cost is part of "client_cpu_us_per_req".
//
// Each client is one goroutine that writes its requests straight to its own
// keep-alive connection and reads the answers with http.ReadResponse
// (-client raw, the default); -client nethttp uses an http.Client, which
// costs this process twice the CPU per request (see send.go).
//
// Its own garbage collector runs only when its heap reaches -mem-limit
// (GOGC off), not 20 times a second as with Go's default on this small
// heap: every collection pauses all clients at once, and the pause counted
// as the server's latency in the p99.
//
// The server's CPU comes from /proc/PID/stat (utime + stime of every thread
// of -pid) read at the start and the end of the measured window, after the
// warm-up; its RSS is VmRSS from /proc/PID/status at the end of the window.
// Only loopback URLs are accepted. A response counts as an error unless it
// is 200 and, with -check (the default), its body is what the mode expects:
// an access_token for the token modes, "active": true for introspect.
//
// While the measured window runs, the server's VmRSS is sampled every
// -rss-every: "server_rss_max_mb" is the largest sample, "server_hwm_mb"
// the server's VmHWM (its peak since it started) at the end.
//
//	load keygen -alg RS384|ES384 -kid KID -key FILE -jwks FILE
//
// writes a new private key (PKCS #8 PEM) and its public JWKS for a
// private_key_jwt client.
//
//	load watch -pid PID
//
// samples a process (a seed or an import) until it exits and prints its
// CPU time, wall time and largest VmRSS as one JSON line (see watch.go).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const (
	assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	maxRequests   = 5_000_000        // hard bound on -n
	maxDuration   = 10 * time.Minute // hard bound on -d and -warmup
	errorsShown   = 5

	assertionLifetime = 4 * time.Minute  // exp - iat of every assertion; servers allow 5 min
	assertionMargin   = 15 * time.Second // the window must end this long before the oldest exp
	poolHeadroom      = 2.0              // the window's pool is the warm-up rate x -d x this
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "watch" {
		if err := watch(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "load watch:", err)
			os.Exit(2)
		}
		return
	}
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
	targetsFile              string
	targets                  []fhirTarget // the FHIR modes
	txEntries                int          // fhir-transaction: entries per Bundle
	prime                    bool         // FHIR modes: one request per distinct token before the warm-up
	rssEvery                 time.Duration
	export                   exportOptions
	pid                      int
	check                    bool
	timeout                  time.Duration
	signer                   jose.Signer
	tokens                   []string

	// The browser-flow modes (flow.go).
	authorizeURL, redirectURI, authParams string
	login, username, password, hydraAdmin string
	authQuery                             string   // fixed part of every authorization request
	tokenURL                              *url.URL // -url, parsed
	openid                                bool     // the scope has openid, so every token answer needs an id_token

	cpuProfile       string
	client           string // raw or nethttp
	fixed            string // the form fields every request of the mode sends
	basic            bool   // client_secret_basic
	presign          bool
	warmupAssertions int
	maxAssertions    int
	signBudget       time.Duration
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
	ServerRSSMaxMB    float64 `json:"server_rss_max_mb,omitempty"`
	ServerHWMMB       float64 `json:"server_hwm_mb,omitempty"`
	ClientCPUusPerReq float64 `json:"client_cpu_us_per_req"`
	// OtherCPUCores is the machine's busy CPU (all cores, from /proc/stat)
	// over the window less the server's and this process's: anything else
	// running here that competed with the measurement. StealCores is the
	// time the hypervisor gave this VM's CPUs to others.
	OtherCPUCores float64 `json:"other_cpu_cores"`
	StealCores    float64 `json:"steal_cores"`
	TokenPool     int     `json:"token_pool,omitempty"`
	// The FHIR modes: lines of -targets, and for fhir-transaction the
	// entries of each Bundle and the entries written per second.
	Targets int `json:"targets,omitempty"`
	// Primed is how many distinct tokens were sent once before the
	// warm-up (-prime), and how long that took.
	Primed       int     `json:"primed,omitempty"`
	PrimeSeconds float64 `json:"prime_seconds,omitempty"`
	TxEntries    int     `json:"tx_entries,omitempty"`
	EntriesPerS  float64 `json:"entries_per_s,omitempty"`
	// With -presign: how many assertions were signed for the window, how
	// long that took (outside the window), and whether the window ended at
	// its duration ("time") or when the pool or -n ran out ("count").
	Presigned   int     `json:"presigned,omitempty"`
	SignSeconds float64 `json:"sign_seconds,omitempty"`
	EndedBy     string  `json:"ended_by"`
	// Browser-flow modes: HTTP requests per operation in the window (all
	// of them: to the server, and for Hydra also to its admin API), and
	// how long the clients' first, interactive flows took before the
	// warm-up.
	HTTPPerOp    float64 `json:"http_per_op,omitempty"`
	SetupSeconds float64 `json:"setup_seconds,omitempty"`
}

func run(args []string) error {
	var o options
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.StringVar(&o.url, "url", "", "endpoint URL to POST to (token or introspection endpoint); loopback only")
	fs.StringVar(&o.target, "target", "", "name of the target in the output (default: the URL's host)")
	fs.StringVar(&o.mode, "mode", "cc-secret", "cc-secret, cc-jwt-rs384, cc-jwt-es384, introspect, authcode, refresh, fhir-read, fhir-search, fhir-include, fhir-transaction or export")
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
	fs.StringVar(&o.scope, "scope", "system/Patient.rs", "scope parameter of token requests (empty: none sent); authcode and refresh: of the authorization request (default \"openid offline_access\")")
	fs.StringVar(&o.authorizeURL, "authorize-url", "", "authcode, refresh: the authorization endpoint; loopback only")
	fs.StringVar(&o.redirectURI, "redirect-uri", "http://127.0.0.1/callback", "authcode, refresh: the client's registered redirect_uri (never dialled)")
	fs.StringVar(&o.authParams, "authorize-params", "", "authcode, refresh: more authorization parameters, urlencoded (e.g. aud=...)")
	fs.StringVar(&o.login, "login", "", "authcode, refresh: how each client's first flow signs in and consents: smartgate (its /login and /consent pages), hydra (a login and consent provider over -hydra-admin) or oidc-provider (its /interaction/ endpoint accepts at once)")
	fs.StringVar(&o.username, "username", "", "authcode, refresh: the user who signs in (smartgate: a user name; hydra: the subject)")
	fs.StringVar(&o.password, "password", "", "authcode, refresh with -login smartgate: the user's password")
	fs.StringVar(&o.hydraAdmin, "hydra-admin", "", "authcode, refresh with -login hydra: Hydra's admin API base URL; loopback only")
	fs.StringVar(&o.tokensFile, "tokens", "", "file of tokens to introspect, one a line, cycled (introspect)")
	fs.StringVar(&o.targetsFile, "targets", "", "FHIR modes: file of requests, one a line: PATH<TAB>TOKEN[<TAB>PATIENT] (see fhir.go)")
	fs.IntVar(&o.txEntries, "tx-entries", 100, "fhir-transaction: entries per transaction Bundle")
	fs.BoolVar(&o.prime, "prime", false, "FHIR modes: before the warm-up, send one GET with each distinct token of -targets (its line's path; for fhir-transaction a read of its patient), so that the window measures a server whose verified-token cache holds the pool, as a long-running one's does")
	fs.DurationVar(&o.rssEvery, "rss-every", 100*time.Millisecond, "how often the server's VmRSS is sampled during the window (with -pid)")
	o.export.flags(fs)
	fs.StringVar(&o.saveTokens, "save-tokens", "", "write every access_token issued in the measured window to this file, one a line (token modes)")
	fs.IntVar(&o.pid, "pid", 0, "server process id: its CPU and RSS are read from /proc (0: not measured)")
	fs.BoolVar(&o.check, "check", true, "count a 200 whose body is not what the mode expects as an error")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.StringVar(&o.client, "client", "raw", "HTTP client: raw (one goroutine per connection, requests written directly) or nethttp (http.Client)")
	cpuProfile := fs.String("cpuprofile", "", "write this process's CPU profile of the measured window to this file (go tool pprof)")
	memLimit := fs.Int64("mem-limit", 1<<30, "bytes of heap at which this process collects garbage (GOGC off below it); 0 keeps Go's default or $GOGC")
	fs.BoolVar(&o.presign, "presign", true, "cc-jwt-*: sign the assertions before the measured window (false: one per request inside it)")
	fs.IntVar(&o.warmupAssertions, "warmup-assertions", 3000, "cc-jwt-* with -presign: assertions signed for the warm-up (its rate sizes the window's pool)")
	fs.IntVar(&o.maxAssertions, "max-assertions", 150_000, "cc-jwt-* with -presign: most assertions signed for the window")
	fs.DurationVar(&o.signBudget, "sign-budget", 90*time.Second, "cc-jwt-* with -presign: longest time spent signing the window's pool")
	if err := fs.Parse(args); err != nil {
		return err
	}
	scopeSet := false
	fs.Visit(func(f *flag.Flag) { scopeSet = scopeSet || f.Name == "scope" })
	if !scopeSet && (o.mode == "authcode" || o.mode == "refresh") {
		o.scope = "openid offline_access"
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := o.validate(); err != nil {
		return err
	}
	if *memLimit > 0 {
		debug.SetMemoryLimit(*memLimit)
		debug.SetGCPercent(-1)
	}
	o.cpuProfile = *cpuProfile
	if o.mode == "export" {
		res, err := o.runExport()
		if err != nil {
			return err
		}
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		return nil
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
	if o.client != "raw" && o.client != "nethttp" {
		return fmt.Errorf("-client %q: use raw or nethttp", o.client)
	}
	o.fixed, o.basic = o.fixedForm()
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
		if o.presign {
			if o.warmupAssertions < 1 || o.maxAssertions < 1 || o.warmupAssertions > maxRequests || o.maxAssertions > maxRequests {
				return fmt.Errorf("-warmup-assertions and -max-assertions: use 1 to %d", maxRequests)
			}
			// Signing and then using a pool must end before its exp.
			if o.signBudget <= 0 || o.signBudget+max(o.d, o.warmup)+assertionMargin >= assertionLifetime {
				return fmt.Errorf("-sign-budget %s with -d %s (or -warmup %s): signing and using a pool must fit in the assertions' %s lifetime less %s", o.signBudget, o.d, o.warmup, assertionLifetime, assertionMargin)
			}
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
	case "authcode", "refresh":
		if err := o.validateFlow(u); err != nil {
			return err
		}
	case "fhir-read", "fhir-search", "fhir-include", "fhir-transaction":
		if o.client != "raw" || u.Scheme != "http" {
			return fmt.Errorf("%s runs only with -client raw over http", o.mode)
		}
		if o.targetsFile == "" {
			return fmt.Errorf("%s needs -targets", o.mode)
		}
		if o.saveTokens != "" {
			return fmt.Errorf("-save-tokens is not for %s", o.mode)
		}
		if o.txEntries < 1 || o.txEntries > 1000 {
			return fmt.Errorf("-tx-entries %d: use 1 to 1000 (the server's limit)", o.txEntries)
		}
		lines, err := readLines(o.targetsFile)
		if err != nil {
			return err
		}
		if o.targets, err = parseTargets(lines); err != nil {
			return fmt.Errorf("-targets %s: %w", o.targetsFile, err)
		}
		if len(o.targets) == 0 {
			return fmt.Errorf("-targets %s holds no request", o.targetsFile)
		}
		if o.mode == "fhir-transaction" {
			for i, t := range o.targets {
				if t.patient == "" {
					return fmt.Errorf("-targets %s: line %d has no PATIENT, which fhir-transaction needs", o.targetsFile, i+1)
				}
			}
		}
	case "export":
		if err := o.export.validate(o); err != nil {
			return err
		}
	default:
		return fmt.Errorf("-mode %q: use cc-secret, cc-jwt-rs384, cc-jwt-es384, introspect, authcode, refresh, fhir-read, fhir-search, fhir-include, fhir-transaction or export", o.mode)
	}
	if o.pid != 0 {
		if _, err := procCPU(o.pid); err != nil {
			return fmt.Errorf("-pid %d: %w", o.pid, err)
		}
	}
	return nil
}

// validateFlow checks the flags of the browser-flow modes; tok is -url.
func (o *options) validateFlow(tok *url.URL) error {
	if o.client != "raw" || tok.Scheme != "http" {
		return fmt.Errorf("%s runs only with -client raw over http", o.mode)
	}
	if o.clientID == "" || o.authorizeURL == "" {
		return fmt.Errorf("%s needs -client-id and -authorize-url", o.mode)
	}
	if o.saveTokens != "" {
		return fmt.Errorf("-save-tokens is not for %s", o.mode)
	}
	for _, raw := range []string{o.authorizeURL, o.hydraAdmin} {
		if raw == "" {
			continue
		}
		v, err := url.Parse(raw)
		if err != nil || v.Scheme != "http" {
			return fmt.Errorf("%q is not an http URL", raw)
		}
		if err := loopbackOnly(v.Hostname()); err != nil {
			return err
		}
	}
	if r, err := url.Parse(o.redirectURI); err != nil || r.Scheme == "" || r.Host == "" {
		return fmt.Errorf("-redirect-uri %q is not an absolute URL", o.redirectURI)
	}
	if _, err := url.ParseQuery(o.authParams); err != nil {
		return fmt.Errorf("-authorize-params %q: %w", o.authParams, err)
	}
	switch o.login {
	case "smartgate":
		if o.username == "" || o.password == "" {
			return errors.New("-login smartgate needs -username and -password")
		}
	case "hydra":
		if o.hydraAdmin == "" || o.username == "" {
			return errors.New("-login hydra needs -hydra-admin and -username (the subject)")
		}
	case "oidc-provider":
	default:
		return fmt.Errorf("-login %q: use smartgate, hydra or oidc-provider", o.login)
	}
	o.authorizeURL = strings.TrimSuffix(o.authorizeURL, "?")
	o.authQuery = o.authorizeQuery()
	o.tokenURL = tok
	o.openid = slices.Contains(strings.Fields(o.scope), "openid")
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
	senders  []sender   // one per client (the token and introspection modes)
	browsers []*browser // one per client (the browser-flow modes)
	deadline time.Time
	budget   atomic.Int64 // requests left; counts down below zero when spent
	next     atomic.Uint64
	done     atomic.Int64 // requests sent (answered or failed)
	// assertions, when not nil, are the pre-signed client assertions of
	// this phase, each used once (the budget is at most their number).
	assertions []string
	errs       atomic.Int64
	shown      atomic.Int64
	record     bool

	mu    sync.Mutex
	saved *bufio.Writer
}

func (o *options) load() (*Result, error) {
	var senders []sender
	var browsers []*browser
	var setup time.Duration
	if o.mode == "authcode" || o.mode == "refresh" {
		browsers = o.newBrowsers()
		defer func() {
			for _, b := range browsers {
				b.close()
			}
		}()
		var err error
		if setup, err = o.setupBrowsers(browsers); err != nil {
			return nil, err
		}
	} else {
		senders = o.newSenders()
		defer func() {
			for _, sd := range senders {
				sd.close()
			}
		}()
	}

	var primed int
	var primeTime time.Duration
	if o.prime && isFHIRMode(o.mode) {
		var err error
		if primed, primeTime, err = o.primeTokens(senders); err != nil {
			return nil, err
		}
	}
	presign := o.signer != nil && o.presign
	// rate is the warm-up's requests per second: it sizes the window's
	// pool of pre-signed assertions (0: no warm-up, so -n or the maximum).
	var rate float64
	if o.warmup > 0 {
		w := &phase{o: o, senders: senders, browsers: browsers}
		w.budget.Store(maxRequests)
		if presign {
			pool, _, err := o.signPool(o.warmupAssertions, o.signBudget)
			if err != nil {
				return nil, err
			}
			w.assertions = pool
			w.budget.Store(int64(len(pool)))
		}
		start := time.Now()
		w.deadline = start.Add(o.warmup)
		// The rate over the warm-up's second half, after connections are
		// up and the server has warmed, sizes the window's pool; the
		// whole warm-up's if its pool ran out before then.
		var mid, midAt atomic.Int64 // requests done, and when (UnixNano), at half time
		mid.Store(-1)
		timer := time.AfterFunc(o.warmup/2, func() { midAt.Store(time.Now().UnixNano()); mid.Store(w.done.Load()) })
		w.run()
		timer.Stop()
		end := time.Now()
		if m := mid.Load(); m >= 0 && end.Sub(time.Unix(0, midAt.Load())) > o.warmup/4 {
			rate = float64(w.done.Load()-m) / end.Sub(time.Unix(0, midAt.Load())).Seconds()
		} else {
			rate = float64(w.done.Load()) / end.Sub(start).Seconds()
		}
		if w.errs.Load() > 0 {
			fmt.Fprintf(os.Stderr, "load: %s %s: %d errors during the warm-up\n", o.target, o.mode, w.errs.Load())
		}
	}

	p := &phase{o: o, senders: senders, browsers: browsers, record: true}
	budget := int64(o.n)
	if budget == 0 {
		budget = maxRequests
	}
	var presigned int
	var signTime time.Duration
	if presign {
		want := o.maxAssertions
		if o.n > 0 {
			want = min(want, o.n)
		}
		if rate > 0 {
			want = min(want, int(rate*o.d.Seconds()*poolHeadroom)+o.c)
		}
		pool, took, err := o.signPool(want, o.signBudget)
		if err != nil {
			return nil, err
		}
		p.assertions, presigned, signTime = pool, len(pool), took
		budget = min(budget, int64(len(pool)))
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

	if presign {
		for _, sd := range senders {
			if err := sd.reconnect(); err != nil {
				return nil, err
			}
		}
	}
	runtime.GC() // the window starts with an empty heap: no collection inside it below -mem-limit
	var cpu0, cpu1 time.Duration
	var err error
	if o.pid != 0 {
		if cpu0, err = procCPU(o.pid); err != nil {
			return nil, err
		}
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
	}
	var rss *rssSampler
	if o.pid != 0 {
		rss = sampleRSS(o.pid, o.rssEvery)
	}
	http0 := httpRequests(browsers)
	self0 := selfCPU()
	busy0, steal0, statErr := machineCPU()
	start := time.Now()
	p.deadline = start.Add(o.d)
	lat := p.run()
	elapsed := time.Since(start)
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	self1 := selfCPU()
	busy1, steal1, statErr1 := machineCPU()
	var rssMax int64
	if rss != nil {
		rssMax = rss.stop()
	}
	res := &Result{Target: o.target, Mode: o.mode, Concurrency: o.c, Seconds: round(elapsed.Seconds(), 3), TokenPool: len(o.tokens),
		Presigned: presigned, SignSeconds: round(signTime.Seconds(), 1), EndedBy: "time", SetupSeconds: round(setup.Seconds(), 1)}
	if p.budget.Load() < 0 {
		res.EndedBy = "count"
	}
	if o.pid != 0 {
		if cpu1, err = procCPU(o.pid); err != nil {
			return nil, err
		}
		rssNow, err := procRSS(o.pid)
		if err != nil {
			return nil, err
		}
		res.ServerRSSMB = round(float64(rssNow)/(1<<20), 1)
		res.ServerRSSMaxMB = round(float64(max(rssNow, rssMax))/(1<<20), 1)
		if hwm, err := procHWM(o.pid); err == nil {
			res.ServerHWMMB = round(float64(hwm)/(1<<20), 1)
		}
	}
	if isFHIRMode(o.mode) {
		res.Targets = len(o.targets)
		res.Primed, res.PrimeSeconds = primed, round(primeTime.Seconds(), 1)
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
	if o.mode == "fhir-transaction" {
		res.TxEntries = o.txEntries
		res.EntriesPerS = round(float64(n*int64(o.txEntries))/elapsed.Seconds(), 0)
	}
	res.P50ms = ms(quantile(lat, 0.50))
	res.P90ms = ms(quantile(lat, 0.90))
	res.P99ms = ms(quantile(lat, 0.99))
	res.MaxMs = ms(lat[n-1])
	if o.pid != 0 {
		res.ServerCPUusPerReq = round(float64((cpu1-cpu0).Microseconds())/float64(n), 1)
		res.ServerCPUCores = round((cpu1-cpu0).Seconds()/elapsed.Seconds(), 2)
	}
	res.ClientCPUusPerReq = round(float64((self1-self0).Microseconds())/float64(n), 1)
	if browsers != nil {
		res.HTTPPerOp = round(float64(httpRequests(browsers)-http0)/float64(n), 2)
	}
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
			var sd sender
			var br *browser
			if p.browsers != nil {
				br = p.browsers[i]
			} else {
				sd = p.senders[i]
			}
			for time.Now().Before(p.deadline) && p.budget.Add(-1) >= 0 {
				t0 := time.Now()
				if br != nil {
					p.oneFlow(br)
				} else {
					p.one(sd)
				}
				p.done.Add(1)
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

// fixedForm is the form every request of the mode sends, urlencoded,
// and whether the client authenticates with HTTP Basic; one adds the
// assertion or the token of each request.
func (o *options) fixedForm() (string, bool) {
	f := url.Values{}
	basic := false
	if o.mode != "introspect" {
		f.Set("grant_type", "client_credentials")
		if o.scope != "" {
			f.Set("scope", o.scope)
		}
	}
	switch o.mode {
	case "cc-secret", "introspect":
		if o.mode == "introspect" && o.clientID == "" {
			break
		}
		if o.auth == "basic" {
			basic = true
		} else {
			f.Set("client_id", o.clientID)
			f.Set("client_secret", o.secret)
		}
	case "cc-jwt-rs384", "cc-jwt-es384":
		f.Set("client_assertion_type", assertionType)
	}
	return f.Encode(), basic
}

// one sends one request and reads the whole response.
func (p *phase) one(sd sender) {
	o := p.o
	body := o.fixed
	switch o.mode {
	case "cc-jwt-rs384", "cc-jwt-es384":
		var a string
		if p.assertions != nil {
			a = p.assertions[p.next.Add(1)-1] // the budget keeps the index in range
		} else {
			var err error
			if a, err = o.assertion(time.Now()); err != nil {
				p.fail(0, "signing the assertion: "+err.Error())
				return
			}
		}
		body += "&client_assertion=" + url.QueryEscape(a)
	case "fhir-read", "fhir-search", "fhir-include", "fhir-transaction":
		p.oneFHIR(sd)
		return
	case "introspect":
		tok := o.tokens[(p.next.Add(1)-1)%uint64(len(o.tokens))]
		if body != "" {
			body += "&"
		}
		body += "token=" + url.QueryEscape(tok)
	}
	status, resp, err := sd.send(body, o.basic)
	if err != nil {
		p.fail(status, err.Error())
		return
	}
	if status != http.StatusOK {
		p.fail(status, string(resp))
		return
	}
	if o.check {
		if err := checkBody(o.mode, resp); err != nil {
			p.fail(status, err.Error()+": "+string(resp))
			return
		}
	}
	if p.saved != nil && p.record {
		var r struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(resp, &r) != nil || r.AccessToken == "" {
			p.fail(status, "no access_token: "+string(resp))
			return
		}
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
		if status != 0 {
			msg = "status " + strconv.Itoa(status) + ": " + msg
		}
		fmt.Fprintf(os.Stderr, "load: %s %s: %s\n", p.o.target, p.o.mode, strings.TrimSpace(msg))
	}
}

// httpRequests is how many HTTP requests the browsers sent so far (read
// between phases, when no client runs).
func httpRequests(bs []*browser) int64 {
	var n int64
	for _, b := range bs {
		n += b.requests
	}
	return n
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
