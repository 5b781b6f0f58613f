// Package config is smartgate's one typed configuration. Load builds it in
// layers, each overriding the one before: defaults, the YAML file (--config),
// the environment (SMARTGATE_*), then command-line flags. Validate reports
// every problem at once, each naming the key and the fix.
package config

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Config is every setting smartgate reads. The yaml tag is the key's name in
// the file; the environment variable is SMARTGATE_ + the dotted key in upper
// case with "_" for "." (tls.cert_file -> SMARTGATE_TLS_CERT_FILE).
// docs/configuration.md documents every key; a test keeps them in step.
type Config struct {
	Dev              bool         `yaml:"dev"`
	Sandbox          bool         `yaml:"sandbox"` // dev mode plus /sandbox (launch simulator, error injection); turns Dev on
	Issuer           string       `yaml:"issuer"`
	Listen           string       `yaml:"listen"`
	DataDir          string       `yaml:"data_dir"`
	Database         string       `yaml:"database"`
	DatabaseMaxConns int          `yaml:"database_max_conns"`
	KEK              string       `yaml:"kek" secret:"true"`
	KEKFile          string       `yaml:"kek_file"`
	TrustedProxies   []string     `yaml:"trusted_proxies"`
	TLS              TLS          `yaml:"tls"`
	Log              Log          `yaml:"log"`
	Keys             Keys         `yaml:"keys"`
	Tokens           Tokens       `yaml:"tokens"`
	Registration     Registration `yaml:"registration"`
	FHIR             FHIR         `yaml:"fhir"`
	Assertions       Assertions   `yaml:"assertions"`
	RateLimits       RateLimits   `yaml:"rate_limits"`
	Changes          Changes      `yaml:"changes"`
	Audit            Audit        `yaml:"audit"`
	Login            Login        `yaml:"login"`
	Authorize        Authorize    `yaml:"authorize"`
	Export           Export       `yaml:"export"`
	Federation       Federation   `yaml:"federation"`
	ShutdownTimeout  Duration     `yaml:"shutdown_timeout"`
}

// TLS names the certificate smartgate serves when it terminates TLS itself.
// Both files are re-read on SIGHUP.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Log sets the structured log stream (always to standard error).
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or text
}

// Keys sets the signing-key lifecycle.
type Keys struct {
	// JWKSMaxAge is the Cache-Control max-age of /oauth2/jwks, and so how long
	// a new key is published before it signs anything.
	JWKSMaxAge Duration `yaml:"jwks_max_age"`
	// RotateAfter is the age at which doctor recommends rotating a key.
	RotateAfter Duration `yaml:"rotate_after"`
}

// Tokens sets token lifetimes; a retired signing key stays published until
// the longest of them has passed.
type Tokens struct {
	AccessTokenTTL  Duration `yaml:"access_token_ttl"`
	BackendTokenTTL Duration `yaml:"backend_token_ttl"`
	IDTokenTTL      Duration `yaml:"id_token_ttl"`
	// RefreshIdleTTL ends an offline_access refresh token unused this long.
	RefreshIdleTTL Duration `yaml:"refresh_idle_ttl"`
	// RefreshMaxTTL ends an offline_access grant this long after it began.
	RefreshMaxTTL Duration `yaml:"refresh_max_ttl"`
	// RefreshReuseGrace lets a rotated refresh token be used again this
	// long after its first use (concurrent retries); 0 turns it off.
	RefreshReuseGrace Duration `yaml:"refresh_reuse_grace"`
}

// Registration sets dynamic client registration (RFC 7591).
type Registration struct {
	// Policy is "open" (anyone may register) or "token" (an initial access
	// token from `smartgate client initial-token` is required). Default:
	// open in dev mode, token otherwise.
	Policy string `yaml:"policy"`
}

// FHIR sets the FHIR API's access rules.
type FHIR struct {
	// PractitionerAccess is what user/ scopes of a practitioner reach:
	// "all" (every patient of this single-organization deployment) or
	// "care-relationship" (only patients whose Patient.generalPractitioner,
	// an Encounter's participant or a CareTeam's participant names the
	// practitioner).
	PractitionerAccess string `yaml:"practitioner_access"`
	// ReadSlots is how many FHIR reads and searches (GET) one node runs
	// at once; the others wait for a slot in arrival order. 0 (the
	// default): twice the CPUs the Go runtime uses (GOMAXPROCS), plus
	// database_max_conns on PostgreSQL.
	ReadSlots int `yaml:"read_slots"`
	// ReadMaxWait is the longest a read waits for a slot; then it runs
	// without one, so a slow request never holds the others back longer.
	ReadMaxWait Duration `yaml:"read_max_wait"`
}

// Assertions sets the checks on client assertions (RFC 7523, SMART
// Backend Services).
type Assertions struct {
	MaxLifetime Duration `yaml:"max_lifetime"` // exp at most this far ahead
	Skew        Duration `yaml:"skew"`         // clock skew tolerated; jti kept until exp + skew
}

// RateLimits bound request rates. Enabled by default; turn off for benchmarks.
type RateLimits struct {
	Enabled bool `yaml:"enabled"`
	// TokenPerClient is the sustained token-endpoint requests per second of
	// one client; TokenBurst how many may come at once.
	TokenPerClient int `yaml:"token_per_client"`
	TokenBurst     int `yaml:"token_burst"`
	// RegisterPerAddress is dynamic registrations per minute from one
	// client address; RegisterBurst how many at once.
	RegisterPerAddress int `yaml:"register_per_address"`
	RegisterBurst      int `yaml:"register_burst"`
}

// Changes sets the cross-node change feed.
type Changes struct {
	PollInterval Duration `yaml:"poll_interval"`
	StaleAfter   Duration `yaml:"stale_after"`
}

// Audit sets the batched audit writer.
type Audit struct {
	BatchSize     int      `yaml:"batch_size"`
	FlushInterval Duration `yaml:"flush_interval"`
	QueueSize     int      `yaml:"queue_size"`
}

// Login sets local sign-in: login sessions, two-factor rules and the
// throttling of failed attempts (per account and per client address,
// shared by every node). After the free failures, each further failure
// doubles the wait before the next attempt, from BackoffBase up to
// BackoffMax; a key with no failure for FailureWindow starts afresh.
type Login struct {
	RequireTOTPForAdmins bool     `yaml:"require_totp_for_admins"`
	SessionTTL           Duration `yaml:"session_ttl"`
	AccountFreeFailures  int      `yaml:"account_free_failures"`
	AddressFreeFailures  int      `yaml:"address_free_failures"`
	BackoffBase          Duration `yaml:"backoff_base"`
	BackoffMax           Duration `yaml:"backoff_max"`
	FailureWindow        Duration `yaml:"failure_window"`
	// MaxConcurrentHashes bounds argon2id computations at once (19 MiB
	// each); 0 means GOMAXPROCS.
	MaxConcurrentHashes int `yaml:"max_concurrent_hashes"`
}

// DevListen is the dev-mode listen address when none is given.
// Export configures Bulk Data $export.
type Export struct {
	// Retention is how long a finished export's files stay downloadable.
	Retention Duration `yaml:"retention"`
	// MaxFileResources starts a new NDJSON file after this many lines.
	MaxFileResources int `yaml:"max_file_resources"`
	// MaxActivePerClient bounds the exports one client may have waiting
	// or running at once.
	MaxActivePerClient int `yaml:"max_active_per_client"`
}

// Authorize configures the browser flow: /oauth2/authorize, the login,
// patient-picker and consent pages, and the password grant.
type Authorize struct {
	// RequestTTL is how long a user has to finish signing in, picking a
	// patient and consenting after the app sent them to /oauth2/authorize.
	RequestTTL Duration `yaml:"request_ttl"`
	// ConsentFreeAdminClients skips the consent page for clients an
	// administrator created (never for self-registered ones).
	ConsentFreeAdminClients bool `yaml:"consent_free_admin_clients"`
	// PasswordGrantRoles turns the resource owner password grant on for
	// these roles (practitioner, patient). Development only: the app sees
	// the user's password. Never for admins or users with two-factor login.
	PasswordGrantRoles []string `yaml:"password_grant_roles"`
}

const DevListen = "127.0.0.1:8080"

// Default returns the built-in defaults (the first layer).
func Default() Config {
	return Config{
		DataDir:          "./smartgate-data",
		DatabaseMaxConns: 8,
		Log:              Log{Level: "info", Format: "json"},
		Keys:             Keys{JWKSMaxAge: Duration(15 * time.Minute), RotateAfter: Duration(90 * 24 * time.Hour)},
		Tokens: Tokens{
			AccessTokenTTL:  Duration(time.Hour),
			BackendTokenTTL: Duration(5 * time.Minute),
			IDTokenTTL:      Duration(time.Hour),
			RefreshIdleTTL:  Duration(90 * 24 * time.Hour),
			RefreshMaxTTL:   Duration(365 * 24 * time.Hour),
		},
		Assertions:      Assertions{MaxLifetime: Duration(5 * time.Minute), Skew: Duration(time.Minute)},
		RateLimits:      RateLimits{Enabled: true, TokenPerClient: 20, TokenBurst: 100, RegisterPerAddress: 10, RegisterBurst: 20},
		Changes:         Changes{PollInterval: Duration(time.Second), StaleAfter: Duration(5 * time.Second)},
		Audit:           Audit{BatchSize: 256, FlushInterval: Duration(500 * time.Millisecond), QueueSize: 8192},
		ShutdownTimeout: Duration(15 * time.Second),
		FHIR:            FHIR{PractitionerAccess: "all", ReadMaxWait: Duration(500 * time.Millisecond)},
		Authorize:       Authorize{RequestTTL: Duration(15 * time.Minute)},
		Export:          Export{Retention: Duration(24 * time.Hour), MaxFileResources: 100_000, MaxActivePerClient: 5},
		Login: Login{SessionTTL: Duration(12 * time.Hour), AccountFreeFailures: 3, AddressFreeFailures: 20,
			BackoffBase: Duration(time.Second), BackoffMax: Duration(15 * time.Minute), FailureWindow: Duration(time.Hour)},
	}
}

// Resolve fills the settings derived from others: the dev-mode listen address
// and issuer, the SQLite file and the KEK file inside the data dir. It runs
// after all layers are applied and before Validate.
func (c *Config) Resolve() {
	c.Issuer = strings.TrimRight(c.Issuer, "/")
	if c.Sandbox {
		c.Dev = true // the sandbox is dev mode plus the simulator
	}
	if c.Dev {
		if c.Listen == "" {
			c.Listen = DevListen
		}
		if c.Issuer == "" {
			c.Issuer = "http://" + c.Listen
		}
	}
	if c.KEK == "" && c.KEKFile == "" {
		// Dev mode generates this file; elsewhere an operator creates it
		// (or sets kek_file, or SMARTGATE_KEK).
		c.KEKFile = filepath.Join(c.DataDir, "kek")
	}
	if c.Listen == "" {
		if c.TLS.CertFile != "" {
			c.Listen = ":8443"
		} else {
			c.Listen = ":8080"
		}
	}
	if c.Database == "" {
		c.Database = filepath.Join(c.DataDir, "smartgate.db")
	}
	if c.Registration.Policy == "" {
		c.Registration.Policy = "token"
		if c.Dev {
			c.Registration.Policy = "open"
		}
	}
}

// DevIssuerFor returns the dev-mode issuer for the address the listener
// really bound (which differs from Listen when the port was 0).
func DevIssuerFor(addr net.Addr) string {
	return "http://" + addr.String()
}

// MaxTokenLifetime is the longest lifetime of anything a signing key signs:
// a retired key stays in the JWKS at least this long.
func (c *Config) MaxTokenLifetime() time.Duration {
	m := c.Tokens.AccessTokenTTL
	for _, d := range []Duration{c.Tokens.BackendTokenTTL, c.Tokens.IDTokenTTL} {
		if d > m {
			m = d
		}
	}
	return time.Duration(m)
}

// FHIRReadSlots is fhir.read_slots, with 0 resolved: twice GOMAXPROCS, as
// SQLite runs in this process and a read is CPU here, plus
// database_max_conns on PostgreSQL, where a read also waits for the
// database server and each of the pool's connections may be busy with one.
func (c *Config) FHIRReadSlots() int {
	if c.FHIR.ReadSlots > 0 {
		return c.FHIR.ReadSlots
	}
	n := 2 * runtime.GOMAXPROCS(0)
	if c.IsPostgres() {
		n += c.DatabaseMaxConns
	}
	return n
}

// IsPostgres reports whether Database names a PostgreSQL server.
func (c *Config) IsPostgres() bool {
	return strings.HasPrefix(c.Database, "postgres://") || strings.HasPrefix(c.Database, "postgresql://")
}

// SQLitePath is the file of a SQLite database setting: a path, or a
// sqlite:// or file: URL of one ("" for PostgreSQL).
func (c *Config) SQLitePath() string {
	if c.IsPostgres() {
		return ""
	}
	return SQLitePath(c.Database)
}

// SQLitePath strips the sqlite:// or file: prefix of a SQLite setting.
func SQLitePath(dsn string) string {
	p := strings.TrimPrefix(dsn, "sqlite://")
	p = strings.TrimPrefix(p, "file:")
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	return p
}

// RedactedDatabase is Database without a password, for logs and doctor.
func (c *Config) RedactedDatabase() string {
	if !c.IsPostgres() {
		return c.Database
	}
	u, err := url.Parse(c.Database)
	if err != nil {
		return "postgres://(unparseable DSN)"
	}
	return u.Redacted()
}

// Duration is a time.Duration written as "90s", "15m", "1h" in YAML and
// the environment.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (write it like 90s, 15m or 1h)", string(b))
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration in Go syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
