package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// selfSigned writes a certificate for localhost/127.0.0.1 with the given
// serial and returns its PEM.
func selfSigned(t *testing.T, certFile, keyFile string, serial int64) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// Write the key first, then the certificate: a reload reads both.
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return certPEM
}

var listenLine = regexp.MustCompile(`(?m)^listening on (127\.0\.0\.1:[0-9]+) with TLS$`)

// TestTLSServeAndReloadOnSIGHUP: production mode with smartgate terminating
// TLS; SIGHUP swaps the certificate without a restart, and a broken
// replacement keeps the previous one.
func TestTLSServeAndReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	pemA := selfSigned(t, certFile, keyFile, 1001)
	env := baseEnv("SMARTGATE_KEK="+newKEK(t), "SMARTGATE_TLS_CERT_FILE="+certFile, "SMARTGATE_TLS_KEY_FILE="+keyFile)
	p := start(t, env, "serve", "--issuer", "https://localhost", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"))
	var addr string
	waitFor(t, startTimeout, "the TLS listening line", func() (bool, string) {
		if p.exited() {
			t.Fatalf("server exited: %s", p.describe())
		}
		m := listenLine.FindStringSubmatch(p.stdout.String())
		if m == nil {
			return false, p.stdout.String()
		}
		addr = m[1]
		return true, ""
	})
	if !strings.Contains(p.stdout.String(), "smartgate is ready at https://localhost ") {
		t.Errorf("ready line does not name the https issuer: %s", p.stdout.String())
	}

	pool := x509.NewCertPool()
	servedSerial := func() (int64, *http.Response, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "localhost"},
			DisableKeepAlives: true,
		}}
		resp, err := c.Get("https://" + addr + "/oauth2/jwks")
		if err != nil {
			return 0, nil, err
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), resp, nil
	}
	pool.AppendCertsFromPEM(pemA)
	serial, resp, err := servedSerial()
	if err != nil {
		t.Fatalf("TLS GET with certificate A trusted: %v", err)
	}
	if serial != 1001 || resp.StatusCode != 200 {
		t.Fatalf("served serial %d status %d, want 1001 and 200", serial, resp.StatusCode)
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=") {
		t.Errorf("https issuer without HSTS header: %q", hsts)
	}
	// Plain HTTP on the TLS port is not served.
	if r, _, err := tryGet("http://" + addr + "/oauth2/jwks"); err == nil && r.StatusCode == 200 {
		t.Errorf("plain HTTP answered 200 on the TLS listener")
	}

	pemB := selfSigned(t, certFile, keyFile, 2002)
	pool.AppendCertsFromPEM(pemB)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "certificate B after SIGHUP", func() (bool, string) {
		s, _, err := servedSerial()
		if err != nil {
			return false, err.Error()
		}
		return s == 2002, "still serving an older certificate"
	})

	// A broken certificate file: reload fails, the previous certificate stays.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the failed reload to be logged", func() (bool, string) {
		return strings.Contains(p.stderr.String(), "TLS certificate reload failed"), p.stderr.String()
	})
	if s, _, err := servedSerial(); err != nil || s != 2002 {
		t.Errorf("after a failed reload: serial %d, %v; want 2002 still served", s, err)
	}
	if p.exited() {
		t.Fatalf("server died on a broken certificate reload: %s", p.describe())
	}
}
