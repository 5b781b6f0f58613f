package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"smartgate/internal/app"
	"smartgate/internal/audit"
	"smartgate/internal/changes"
	"smartgate/internal/config"
	"smartgate/internal/keys"
	"smartgate/internal/problem"
)

// Run serves until ctx ends (SIGTERM/SIGINT in the CLI), then shuts down
// gracefully: it stops accepting, lets requests finish within
// shutdown_timeout, flushes the audit queue and closes the store.
// announce receives one line when the node is ready.
func Run(ctx context.Context, a *app.App, announce io.Writer) error {
	cfg := &a.Cfg.Config
	for _, alg := range keys.Algs {
		if _, err := a.Keys.Signer(alg); err != nil {
			if lerr := a.Keys.LoadError(); lerr != nil {
				return lerr
			}
			return err
		}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return problem.Wrap(problem.ConfigInvalid, err, "cannot listen on %s (listen): the address is in use or not available; choose another with --listen", cfg.Listen)
	}
	issuer := cfg.Issuer
	if cfg.Dev {
		issuer = config.DevIssuerFor(ln.Addr())
		// Commands run on the same data dir (smartgate launch, smartgate
		// token) read the issuer from here: it follows --listen.
		if err := os.WriteFile(filepath.Join(cfg.DataDir, DevServerFile), []byte(fmt.Sprintf("{\"issuer\":%q}\n", issuer)), 0o600); err != nil {
			a.Log.Warn("writing the dev server file failed", "error", err.Error())
		}
	}

	var certs *certReloader
	if cfg.TLS.CertFile != "" {
		certs, err = newCertReloader(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get, NextProtos: []string{"h2", "http/1.1"}})
	}

	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	feed := changes.New(a.Store, cfg.Changes.PollInterval.D(), a.Log)
	aw := audit.New(a.Store, audit.Options{BatchSize: cfg.Audit.BatchSize, FlushInterval: cfg.Audit.FlushInterval.D(), QueueSize: cfg.Audit.QueueSize, Log: a.Log})
	defer aw.Close()
	s := New(a, issuer, feed, aw)
	if err := s.Start(runCtx); err != nil {
		ln.Close()
		return err
	}
	aw.Record(ctx, audit.Event{Actor: "system", Action: "server.start", Outcome: audit.Success, Detail: fmt.Sprintf(`{"issuer":%q}`, issuer)})

	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
	// SIGHUP reloads the TLS certificate; without TLS it is logged and
	// ignored rather than killing the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-runCtx.Done():
				return
			case <-hup:
				if certs == nil {
					a.Log.Info("SIGHUP received; nothing to reload (smartgate does not terminate TLS here)")
					continue
				}
				if err := certs.reload(); err != nil {
					a.Log.Error("TLS certificate reload failed; keeping the previous certificate", "error", err.Error())
				} else {
					a.Log.Info("TLS certificate reloaded", "cert_file", cfg.TLS.CertFile)
				}
			}
		}
	}()

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	a.Log.Info("smartgate serving", "issuer", issuer, "listen", ln.Addr().String(), "database", a.Store.Dialect(), "dev", cfg.Dev)
	if announce != nil {
		fmt.Fprintf(announce, "smartgate is ready at %s (JWKS: %s/oauth2/jwks)\n", issuer, issuer)
		tlsNote := ""
		if certs != nil {
			tlsNote = " with TLS"
		}
		fmt.Fprintf(announce, "listening on %s%s\n", ln.Addr(), tlsNote)
	}

	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
	}
	a.Log.Info("shutting down", "timeout", cfg.ShutdownTimeout.D().String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout.D())
	defer cancel()
	err = hs.Shutdown(sctx)
	stop()
	aw.Record(context.Background(), audit.Event{Actor: "system", Action: "server.stop", Outcome: audit.Success})
	return err
}

// certReloader serves the certificate from files, re-read on SIGHUP.
type certReloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certReloader) reload() error {
	cert, err := LoadCertificate(c.certFile, c.keyFile)
	if err != nil {
		return err
	}
	c.cert.Store(cert)
	return nil
}

func (c *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cert.Load(), nil }

// LoadCertificate reads and checks a PEM certificate chain and key.
func LoadCertificate(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, problem.Wrap(problem.TLSCertificate, err, "cannot use tls.cert_file %s with tls.key_file %s: they must be readable PEM files and belong together", certFile, keyFile)
	}
	if cert.Leaf != nil && time.Now().After(cert.Leaf.NotAfter) {
		return nil, problem.New(problem.TLSCertificate, "the certificate in tls.cert_file %s expired on %s; renew it and send SIGHUP", certFile, cert.Leaf.NotAfter.Format(time.DateOnly))
	}
	return &cert, nil
}

// DevServerFile is the file in a dev data dir that names the running dev
// server's issuer, for the commands run on the same data dir.
const DevServerFile = "dev-server.json"
