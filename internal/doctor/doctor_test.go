package doctor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smartgate/internal/app"
	"smartgate/internal/config"
	"smartgate/internal/store/sqlstore"
)

func load(t *testing.T, flags map[string]string) *config.Loaded {
	t.Helper()
	l, err := config.Load(config.Options{Flags: flags})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func find(rs []Result, check string) []Result {
	var out []Result
	for _, r := range rs {
		if r.Check == check {
			out = append(out, r)
		}
	}
	return out
}

func writeCert(t *testing.T, dir string, notBefore, notAfter time.Time, host string) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host}, NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	cert, kf := filepath.Join(dir, host+notAfter.Format("20060102")+".crt"), filepath.Join(dir, host+notAfter.Format("20060102")+".key")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return cert, kf
}

func TestTLSChecks(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		from, to   time.Time
		host       string
		want       Status
		wantInText string
	}{
		{"valid", now.Add(-time.Hour), now.Add(200 * 24 * time.Hour), "ehr.example.org", OK, "valid until"},
		{"expiring", now.Add(-time.Hour), now.Add(5 * 24 * time.Hour), "ehr.example.org", Warn, "expires in 5 days"},
		{"expired", now.Add(-48 * time.Hour), now.Add(-time.Hour), "ehr.example.org", Fail, "expired"},
		{"not yet valid", now.Add(time.Hour), now.Add(48 * time.Hour), "ehr.example.org", Fail, "not valid before"},
		{"wrong host", now.Add(-time.Hour), now.Add(200 * 24 * time.Hour), "other.example.org", Warn, "does not cover the issuer host"},
	} {
		cert, key := writeCert(t, dir, tc.from, tc.to, tc.host)
		cfg := &config.Config{Issuer: "https://ehr.example.org", TLS: config.TLS{CertFile: cert, KeyFile: key}}
		rs := checkTLS(cfg, now)
		worst := OK
		var text string
		for _, r := range rs {
			text += r.Message + " "
			if r.Status == Fail || (r.Status == Warn && worst == OK) {
				worst = r.Status
			}
		}
		if worst != tc.want || !strings.Contains(text, tc.wantInText) {
			t.Errorf("%s: got %s %q, want %s containing %q", tc.name, worst, text, tc.want, tc.wantInText)
		}
	}
	rs := checkTLS(&config.Config{Issuer: "https://x", TLS: config.TLS{CertFile: filepath.Join(dir, "nope"), KeyFile: filepath.Join(dir, "nope")}}, now)
	if rs[0].Status != Fail {
		t.Errorf("missing certificate files: %+v", rs)
	}
}

func TestDoctorOnFreshAndServedInstallations(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	cfg := load(t, map[string]string{"dev": "true", "data_dir": dir})
	rs := Run(ctx, cfg, time.Now)
	if Failed(rs) != 0 {
		t.Fatalf("fresh dev installation has failures: %+v", rs)
	}
	if r := find(rs, "kek"); r[0].Status != Warn || find(rs, "database")[0].Status != Warn {
		t.Errorf("fresh installation: kek %+v, database %+v; want WARN (created at first start)", r, find(rs, "database"))
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("doctor created the data dir; it must not change anything")
	}

	// After a first start: everything OK.
	a, err := app.Open(ctx, cfg, slog.New(slog.DiscardHandler), app.Options{InitKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	rs = Run(ctx, cfg, time.Now)
	for _, r := range rs {
		if r.Status != OK {
			t.Errorf("after first start: %s %s %s (fix: %s)", r.Status, r.Check, r.Message, r.Fix)
		}
	}

	// Keys older than keys.rotate_after: WARN with the rotate command.
	later := func() time.Time { return time.Now().Add(100 * 24 * time.Hour) }
	k := find(Run(ctx, cfg, later), "keys")[0]
	if k.Status != Warn || !strings.Contains(k.Fix, "smartgate key rotate") {
		t.Errorf("old keys: %+v", k)
	}

	// A world-readable KEK file fails, naming the chmod fix.
	os.Chmod(filepath.Join(dir, "kek"), 0o644)
	rs = Run(ctx, cfg, time.Now)
	kek := find(rs, "kek")[0]
	if kek.Status != Fail || !strings.Contains(kek.Message, "chmod 600") {
		t.Errorf("world-readable KEK: %+v", kek)
	}
	if Failed(rs) == 0 {
		t.Errorf("Failed() = 0 with a failing KEK check")
	}
	os.Chmod(filepath.Join(dir, "kek"), 0o600)

	// Another KEK cannot open the stored keys.
	other := load(t, map[string]string{"dev": "true", "data_dir": dir})
	other.KEKFile = ""
	other.KEK = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	if k := find(Run(ctx, other, time.Now), "keys")[0]; k.Status != Fail || !strings.Contains(k.Message, "does not decrypt") {
		t.Errorf("wrong KEK: %+v", k)
	}

	// A seed or import into the empty store that did not end: WARN until
	// serve (or migrate) builds the indexes.
	st, err := sqlstore.Open(ctx, cfg.Database, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if deferred, err := st.BeginBulkLoad(ctx); err != nil || !deferred {
		t.Fatalf("BeginBulkLoad = %v, %v", deferred, err)
	}
	st.Close()
	if r := find(Run(ctx, cfg, time.Now), "search indexes"); len(r) != 1 || r[0].Status != Warn || !strings.Contains(r[0].Fix, "smartgate migrate") {
		t.Errorf("indexes left unbuilt: %+v; want one WARN naming smartgate migrate", r)
	}
	a, err = app.Open(ctx, cfg, slog.New(slog.DiscardHandler), app.Options{InitKeys: true, BuildIndexes: true})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if r := find(Run(ctx, cfg, time.Now), "search indexes"); len(r) != 0 {
		t.Errorf("after serve's start built them: %+v", r)
	}

	// A clock far in the past fails.
	if c := checkClock(ctx, nil, time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)); c.Status != Fail {
		t.Errorf("clock in 2001: %+v", c)
	}
}

func TestDoctorConfigProblems(t *testing.T) {
	cfg := load(t, map[string]string{"issuer": "http://ehr.example.org", "data_dir": t.TempDir()})
	rs := find(Run(context.Background(), cfg, time.Now), "config")
	if len(rs) == 0 || rs[0].Status != Fail || !strings.Contains(rs[0].Message, "issuer") {
		t.Errorf("http issuer: %+v", rs)
	}
}
