package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Problem is one configuration mistake: the key and what to do about it.
type Problem struct {
	Key      string
	Message  string
	Insecure bool // the insecure_issuer case, documented separately
}

func (p Problem) String() string { return p.Key + ": " + p.Message }

// ValidationError lists every problem found at once.
type ValidationError struct{ Problems []Problem }

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the configuration has %d problem(s):", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - " + p.String())
	}
	return b.String()
}

// servingKeys only matter to serve; other commands (key, migrate) skip them.
var servingKeys = map[string]bool{"issuer": true, "listen": true, "tls.cert_file": true, "trusted_proxies": true}

// Validate checks the whole configuration as serve uses it and returns a
// *ValidationError listing every problem, or nil.
func (c *Config) Validate() error { return c.validate(true) }

// ValidateData checks only what commands that act on the data need (the
// database, the KEK, lifetimes), not the serving settings.
func (c *Config) ValidateData() error { return c.validate(false) }

func (c *Config) validate(serving bool) error {
	var ps []Problem
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
	}

	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		add("listen", "%q is not host:port; write it like 127.0.0.1:8080 or :8443", c.Listen)
	}

	if c.Dev {
		if err == nil && !IsLoopbackHost(host) {
			add("listen", "dev mode listens only on a loopback address, not %q; use --listen 127.0.0.1:PORT, or leave dev mode (drop --dev) and set issuer and TLS", c.Listen)
		}
		if c.Issuer != "" && c.Issuer != "http://"+c.Listen {
			add("issuer", "in dev mode the issuer follows the listen address (http://%s); drop issuer, or leave dev mode to set it", c.Listen)
		}
	} else {
		c.validateIssuer(&ps)
	}

	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		add("tls.cert_file", "tls.cert_file and tls.key_file go together; set both (PEM files) or neither")
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				add("trusted_proxies", "%q is neither an IP address nor a CIDR range; write it like 10.0.0.5 or 10.0.0.0/8", p)
			}
		}
	}

	if c.KEK != "" && c.KEKFile != "" {
		add("kek", "both kek (SMARTGATE_KEK) and kek_file are set; keep one")
	}

	if c.Database == "" {
		add("database", "empty; give a postgres:// DSN or a SQLite file path")
	} else if strings.Contains(c.Database, "://") && !c.IsPostgres() && !strings.HasPrefix(c.Database, "sqlite://") {
		add("database", "unsupported scheme in %q; use postgres://user:pass@host:5432/db or a SQLite file path", c.RedactedDatabase())
	} else if !c.IsPostgres() && strings.Contains(c.Database, "=") && strings.Contains(c.Database, " ") {
		add("database", "looks like a key=value PostgreSQL DSN; write it as a URL: postgres://user:pass@host:5432/dbname?sslmode=require")
	}
	if c.DatabaseMaxConns < 1 {
		add("database_max_conns", "must be at least 1, not %d", c.DatabaseMaxConns)
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "%q is not a level; use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		add("log.format", "%q is not a format; use json or text", c.Log.Format)
	}

	positive := map[string]Duration{
		"keys.jwks_max_age":        c.Keys.JWKSMaxAge,
		"keys.rotate_after":        c.Keys.RotateAfter,
		"tokens.access_token_ttl":  c.Tokens.AccessTokenTTL,
		"tokens.backend_token_ttl": c.Tokens.BackendTokenTTL,
		"tokens.id_token_ttl":      c.Tokens.IDTokenTTL,
		"tokens.refresh_idle_ttl":  c.Tokens.RefreshIdleTTL,
		"tokens.refresh_max_ttl":   c.Tokens.RefreshMaxTTL,
		"assertions.max_lifetime":  c.Assertions.MaxLifetime,
		"assertions.skew":          c.Assertions.Skew,
		"changes.poll_interval":    c.Changes.PollInterval,
		"changes.stale_after":      c.Changes.StaleAfter,
		"audit.flush_interval":     c.Audit.FlushInterval,
		"login.session_ttl":        c.Login.SessionTTL,
		"login.backoff_base":       c.Login.BackoffBase,
		"login.backoff_max":        c.Login.BackoffMax,
		"login.failure_window":     c.Login.FailureWindow,
		"shutdown_timeout":         c.ShutdownTimeout,
		"authorize.request_ttl":    c.Authorize.RequestTTL,
		"export.retention":         c.Export.Retention,
	}
	for _, k := range AllKeys() {
		if d, ok := positive[k.Name]; ok && d <= 0 {
			add(k.Name, "must be a positive duration like 30s or 1h, not %s", d.D())
		}
	}
	if c.Changes.PollInterval.D() > 1e9 {
		add("changes.poll_interval", "must be at most 1s so that revocations reach every node within a second, not %s", c.Changes.PollInterval.D())
	}
	if c.Changes.StaleAfter <= c.Changes.PollInterval {
		add("changes.stale_after", "must be longer than changes.poll_interval (%s)", c.Changes.PollInterval.D())
	}
	if c.Tokens.RefreshReuseGrace < 0 || c.Tokens.RefreshReuseGrace.D() > time.Minute {
		add("tokens.refresh_reuse_grace", "must be between 0 (off) and 1m, not %s: a longer window weakens refresh-token reuse detection", c.Tokens.RefreshReuseGrace.D())
	}
	if c.Assertions.MaxLifetime.D() > 5*time.Minute {
		add("assertions.max_lifetime", "must be at most 5m (SMART Backend Services: exp no more than five minutes ahead), not %s", c.Assertions.MaxLifetime.D())
	}
	switch c.Registration.Policy {
	case "open", "token":
	default:
		add("registration.policy", "%q is not a policy; use open (anyone may register) or token (an initial access token is required)", c.Registration.Policy)
	}
	c.validateProviders(add)
	c.validateIssuers(add)
	if c.Export.MaxFileResources < 1 {
		add("export.max_file_resources", "must be at least 1, not %d", c.Export.MaxFileResources)
	}
	if c.Export.MaxActivePerClient < 1 {
		add("export.max_active_per_client", "must be at least 1, not %d", c.Export.MaxActivePerClient)
	}
	for _, r := range c.Authorize.PasswordGrantRoles {
		if r != "practitioner" && r != "patient" {
			add("authorize.password_grant_roles", "%q cannot use the password grant; list practitioner, patient or both (admins and users with two-factor login never can)", r)
		}
	}
	switch c.FHIR.PractitionerAccess {
	case "all", "care-relationship":
	default:
		add("fhir.practitioner_access", "%q is not an access rule; use all (a practitioner's user/ scopes reach every patient) or care-relationship (only patients the practitioner is linked to)", c.FHIR.PractitionerAccess)
	}
	if c.FHIR.ReadSlots < 0 {
		add("fhir.read_slots", "must be 0 (twice the CPUs) or more, not %d", c.FHIR.ReadSlots)
	}
	if c.FHIR.ReadMaxWait.D() <= 0 {
		add("fhir.read_max_wait", "must be longer than 0, not %s; it bounds how long a read waits for a slot before it runs anyway", c.FHIR.ReadMaxWait.D())
	}
	if c.RateLimits.Enabled {
		for k, v := range map[string]int{"rate_limits.token_per_client": c.RateLimits.TokenPerClient, "rate_limits.token_burst": c.RateLimits.TokenBurst,
			"rate_limits.register_per_address": c.RateLimits.RegisterPerAddress, "rate_limits.register_burst": c.RateLimits.RegisterBurst} {
			if v < 1 {
				add(k, "must be at least 1 while rate_limits.enabled is true, not %d; set rate_limits.enabled: false to turn limits off", v)
			}
		}
	}
	for k, v := range map[string]int{"login.account_free_failures": c.Login.AccountFreeFailures, "login.address_free_failures": c.Login.AddressFreeFailures,
		"login.max_concurrent_hashes": c.Login.MaxConcurrentHashes} {
		if v < 0 {
			add(k, "must be 0 or more, not %d", v)
		}
	}
	if c.Login.BackoffMax < c.Login.BackoffBase {
		add("login.backoff_max", "must be at least login.backoff_base (%s)", c.Login.BackoffBase.D())
	}
	if c.Audit.BatchSize < 1 {
		add("audit.batch_size", "must be at least 1")
	}
	if c.Audit.QueueSize < c.Audit.BatchSize {
		add("audit.queue_size", "must be at least audit.batch_size (%d)", c.Audit.BatchSize)
	}
	if !serving {
		kept := ps[:0]
		for _, p := range ps {
			if !servingKeys[p.Key] {
				kept = append(kept, p)
			}
		}
		ps = kept
	}
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}

func (c *Config) validateIssuer(ps *[]Problem) {
	add := func(insecure bool, format string, args ...any) {
		*ps = append(*ps, Problem{Key: "issuer", Message: fmt.Sprintf(format, args...), Insecure: insecure})
	}
	if c.Issuer == "" {
		add(false, "required outside dev mode: the https:// URL clients use to reach smartgate, e.g. https://ehr.example.org (or run serve --dev to try it locally)")
		return
	}
	u, err := url.Parse(c.Issuer)
	if err != nil || !u.IsAbs() || u.Host == "" {
		add(false, "%q is not an absolute URL; write it like https://ehr.example.org", c.Issuer)
		return
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		add(false, "%q must not have a query, fragment or user info (OpenID Connect Discovery §4.1)", c.Issuer)
	}
	switch u.Scheme {
	case "https":
		if c.TLS.CertFile == "" && len(c.TrustedProxies) == 0 {
			add(false, "an https issuer needs TLS: set tls.cert_file and tls.key_file so smartgate terminates TLS, or name the TLS-terminating proxy in trusted_proxies")
		}
	case "http":
		if !IsLoopbackHost(u.Hostname()) {
			add(true, "%q uses http:// on a non-loopback host; OAuth requires TLS: use https://%s and set tls.cert_file/tls.key_file or trusted_proxies (http:// is allowed only for 127.0.0.1, [::1] and localhost)", c.Issuer, u.Host)
		}
	default:
		add(false, "%q must start with https://", c.Issuer)
	}
}

// IsLoopbackHost reports whether host is a loopback IP address or "localhost".
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.IsLoopback()
}
