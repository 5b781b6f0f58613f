// Package doctor checks an installation before (or while) it serves: the
// configuration, TLS certificate, KEK file, database and migrations, signing
// keys and clocks. Each check yields one line: OK, WARN or FAIL with the fix.
package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"smartgate/internal/app"
	"smartgate/internal/config"
	"smartgate/internal/keys"
	"smartgate/internal/problem"
	"smartgate/internal/store/sqlstore"
)

// Status of a check.
type Status string

const (
	OK   Status = "OK"
	Warn Status = "WARN"
	Fail Status = "FAIL"
)

// Result is one check's outcome.
type Result struct {
	Check   string `json:"check"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Run performs every check. It never changes anything (no migration, no key
// generation, no KEK file creation).
func Run(ctx context.Context, cfg *config.Loaded, now func() time.Time) []Result {
	var rs []Result
	add := func(check string, s Status, msg, fix string) {
		rs = append(rs, Result{Check: check, Status: s, Message: msg, Fix: fix})
	}

	// Configuration, as serve would use it.
	var ve *config.ValidationError
	if err := cfg.Validate(); errors.As(err, &ve) {
		for _, p := range ve.Problems {
			add("config", Fail, p.String(), "set "+p.Key+" as described (docs/configuration.md)")
		}
	} else {
		mode := "production"
		if cfg.Dev {
			mode = "dev"
		}
		add("config", OK, fmt.Sprintf("%s mode, issuer %s, listen %s", mode, cfg.Issuer, cfg.Listen), "")
	}

	rs = append(rs, checkTLS(&cfg.Config, now())...)
	kek, kr := checkKEK(&cfg.Config)
	rs = append(rs, kr)

	st, dbResults := checkDatabase(ctx, &cfg.Config)
	rs = append(rs, dbResults...)
	if st != nil {
		defer st.Close()
		rs = append(rs, checkKeys(ctx, cfg, st, kek, now))
		rs = append(rs, checkClock(ctx, st, now()))
	} else {
		add("keys", Warn, "skipped: the database is not usable", "")
		add("clock", Warn, "skipped: the database is not usable", "")
	}
	return rs
}

// Failed reports whether any check failed.
func Failed(rs []Result) int {
	n := 0
	for _, r := range rs {
		if r.Status == Fail {
			n++
		}
	}
	return n
}

func checkTLS(cfg *config.Config, now time.Time) []Result {
	if cfg.TLS.CertFile == "" {
		switch {
		case cfg.Dev:
			return []Result{{Check: "tls", Status: OK, Message: "dev mode: plain HTTP on loopback"}}
		case len(cfg.TrustedProxies) > 0:
			return []Result{{Check: "tls", Status: OK, Message: fmt.Sprintf("terminated by the trusted proxies %v", cfg.TrustedProxies)}}
		default:
			return []Result{{Check: "tls", Status: Warn, Message: "smartgate does not terminate TLS and no trusted proxy is named", Fix: "set tls.cert_file and tls.key_file, or trusted_proxies"}}
		}
	}
	pair, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
	if err != nil {
		return []Result{{Check: "tls", Status: Fail, Message: fmt.Sprintf("cannot load tls.cert_file %s with tls.key_file %s", cfg.TLS.CertFile, cfg.TLS.KeyFile), Fix: "point both keys at readable PEM files that belong together"}}
	}
	leaf := pair.Leaf
	if leaf == nil {
		leaf, _ = x509.ParseCertificate(pair.Certificate[0])
	}
	var rs []Result
	left := leaf.NotAfter.Sub(now)
	switch {
	case now.Before(leaf.NotBefore):
		rs = append(rs, Result{Check: "tls", Status: Fail, Message: fmt.Sprintf("the certificate is not valid before %s", leaf.NotBefore.Format(time.RFC3339)), Fix: "check this machine's clock, or use a certificate valid now"})
	case left <= 0:
		rs = append(rs, Result{Check: "tls", Status: Fail, Message: fmt.Sprintf("the certificate expired on %s", leaf.NotAfter.Format(time.RFC3339)), Fix: "renew it and send SIGHUP to smartgate (no restart needed)"})
	case left < 21*24*time.Hour:
		rs = append(rs, Result{Check: "tls", Status: Warn, Message: fmt.Sprintf("the certificate expires in %d days (%s)", int(left.Hours()/24), leaf.NotAfter.Format(time.DateOnly)), Fix: "renew it soon and send SIGHUP to smartgate"})
	default:
		rs = append(rs, Result{Check: "tls", Status: OK, Message: fmt.Sprintf("certificate for %v valid until %s", leaf.DNSNames, leaf.NotAfter.Format(time.DateOnly))})
	}
	if u, err := url.Parse(cfg.Issuer); err == nil && u.Hostname() != "" {
		if err := leaf.VerifyHostname(u.Hostname()); err != nil {
			rs = append(rs, Result{Check: "tls", Status: Warn, Message: fmt.Sprintf("the certificate does not cover the issuer host %s", u.Hostname()), Fix: "use a certificate whose names include the issuer's host"})
		}
	}
	return rs
}

func checkKEK(cfg *config.Config) (*keys.KEK, Result) {
	if cfg.KEK == "" && cfg.Dev {
		if _, err := os.Stat(cfg.KEKFile); errors.Is(err, fs.ErrNotExist) {
			return nil, Result{Check: "kek", Status: Warn, Message: fmt.Sprintf("no KEK file yet at %s", cfg.KEKFile), Fix: "serve --dev generates it at first start"}
		}
	}
	kek, err := app.LoadKEK(cfg)
	if err != nil {
		pe := problem.From(err)
		return nil, Result{Check: "kek", Status: Fail, Message: pe.Description, Fix: pe.Entry().Fix}
	}
	return kek, Result{Check: "kek", Status: OK, Message: fmt.Sprintf("KEK %s from %s", kek.ID, kek.Source)}
}

func checkDatabase(ctx context.Context, cfg *config.Config) (*sqlstore.DB, []Result) {
	name := cfg.RedactedDatabase()
	if !cfg.IsPostgres() {
		if _, err := os.Stat(cfg.SQLitePath()); errors.Is(err, fs.ErrNotExist) {
			return nil, []Result{{Check: "database", Status: Warn, Message: fmt.Sprintf("no SQLite database yet at %s", name), Fix: "smartgate serve (or migrate) creates it"}}
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := sqlstore.Open(cctx, cfg.Database, sqlstore.Options{MaxConns: 2})
	if err != nil {
		return nil, []Result{{Check: "database", Status: Fail, Message: fmt.Sprintf("cannot reach %s: %v", name, err), Fix: "check the database setting, the server and its credentials"}}
	}
	rs := []Result{}
	if err := st.Check(cctx); err != nil {
		rs = append(rs, Result{Check: "database", Status: Fail, Message: fmt.Sprintf("%s fails its integrity check: %v", name, err), Fix: "restore the last backup (docs/operations.md, Backups)"})
	} else {
		what := name
		if !cfg.IsPostgres() {
			what += " and its audit file " + filepath.Base(sqlstore.AuditFile(cfg.SQLitePath()))
		}
		rs = append(rs, Result{Check: "database", Status: OK, Message: fmt.Sprintf("%s database %s reachable and consistent", st.Dialect(), what)})
	}
	cur, latest, err := st.SchemaVersion(cctx)
	switch {
	case err != nil:
		rs = append(rs, Result{Check: "migrations", Status: Fail, Message: fmt.Sprintf("cannot read the schema version: %v", err), Fix: "check the database user's rights"})
	case cur > latest:
		rs = append(rs, Result{Check: "migrations", Status: Fail, Message: fmt.Sprintf("schema version %d is newer than this binary knows (%d)", cur, latest), Fix: "run the newer smartgate that migrated this database"})
	case cur < latest:
		rs = append(rs, Result{Check: "migrations", Status: Warn, Message: fmt.Sprintf("schema version %d, this binary has %d", cur, latest), Fix: "run smartgate migrate (serve also migrates at start)"})
	default:
		rs = append(rs, Result{Check: "migrations", Status: OK, Message: fmt.Sprintf("schema version %d (latest)", cur)})
	}
	if cur != latest {
		st.Close()
		return nil, rs
	}
	if names, err := st.DeferredIndexes(cctx); err != nil {
		rs = append(rs, Result{Check: "search indexes", Status: Fail, Message: fmt.Sprintf("cannot read the list of deferred search indexes: %v", err)})
	} else if len(names) > 0 {
		rs = append(rs, Result{Check: "search indexes", Status: Warn,
			Message: fmt.Sprintf("%d search indexes are not built (%s): a seed or import into the empty store is running, or was interrupted; searches answer correctly but slowly", len(names), strings.Join(names, ", ")),
			Fix:     "let the running seed or import finish; if none runs, smartgate migrate (or serve) builds them"})
	}
	return st, rs
}

func checkKeys(ctx context.Context, cfg *config.Loaded, st *sqlstore.DB, kek *keys.KEK, now func() time.Time) Result {
	stored, err := st.ListSigningKeys(ctx)
	if err != nil {
		return Result{Check: "keys", Status: Fail, Message: fmt.Sprintf("cannot read the signing keys: %v", err)}
	}
	if len(stored) == 0 {
		return Result{Check: "keys", Status: Warn, Message: "no signing keys yet", Fix: "smartgate serve creates them at first start"}
	}
	if kek == nil {
		return Result{Check: "keys", Status: Fail, Message: fmt.Sprintf("%d signing key(s) stored, but no usable KEK to open them", len(stored)), Fix: "fix the kek check above"}
	}
	m := keys.New(st, keys.Options{
		JWKSMaxAge: cfg.Keys.JWKSMaxAge.D(), MaxTokenLifetime: cfg.MaxTokenLifetime(), Clock: now,
		LoadKEK: func() (*keys.KEK, error) { return kek, nil },
	})
	if err := m.Load(ctx); err != nil {
		return Result{Check: "keys", Status: Fail, Message: err.Error()}
	}
	if err := m.LoadError(); err != nil {
		pe := problem.From(err)
		return Result{Check: "keys", Status: Fail, Message: pe.Description, Fix: pe.Entry().Fix}
	}
	var oldest time.Duration
	var oldestAlg string
	active := 0
	for _, k := range m.List() {
		if k.State != keys.StateActive {
			continue
		}
		active++
		if age := now().Sub(k.ActiveAt); age > oldest {
			oldest, oldestAlg = age, k.Alg
		}
	}
	msg := fmt.Sprintf("%d stored, %d active; oldest active (%s) is %d days old", len(stored), active, oldestAlg, int(oldest.Hours()/24))
	if oldest > cfg.Keys.RotateAfter.D() {
		return Result{Check: "keys", Status: Warn, Message: msg, Fix: fmt.Sprintf("rotate keys older than keys.rotate_after (%s): smartgate key rotate", cfg.Keys.RotateAfter.D())}
	}
	return Result{Check: "keys", Status: OK, Message: msg}
}

func checkClock(ctx context.Context, st *sqlstore.DB, now time.Time) Result {
	if now.Year() < 2025 {
		return Result{Check: "clock", Status: Fail, Message: fmt.Sprintf("this machine's clock says %s", now.Format(time.RFC3339)), Fix: "synchronise the clock (NTP): tokens carry issue and expiry times"}
	}
	if st.Dialect() != "postgres" {
		return Result{Check: "clock", Status: OK, Message: "the embedded database uses this machine's clock (" + now.UTC().Format(time.RFC3339) + ")"}
	}
	dbNow, err := st.Now(ctx)
	if err != nil {
		return Result{Check: "clock", Status: Warn, Message: fmt.Sprintf("cannot read the database clock: %v", err)}
	}
	skew := dbNow.Sub(now)
	if skew < 0 {
		skew = -skew
	}
	switch {
	case skew > 30*time.Second:
		return Result{Check: "clock", Status: Fail, Message: fmt.Sprintf("this machine's clock and the database server's differ by %s", skew.Round(time.Millisecond)), Fix: "synchronise both clocks (NTP)"}
	case skew > 2*time.Second:
		return Result{Check: "clock", Status: Warn, Message: fmt.Sprintf("this machine's clock and the database server's differ by %s", skew.Round(time.Millisecond)), Fix: "synchronise both clocks (NTP)"}
	}
	return Result{Check: "clock", Status: OK, Message: fmt.Sprintf("within %s of the database server's clock", skew.Round(time.Millisecond))}
}
