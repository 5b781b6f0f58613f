package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"smartgate/internal/app"
	"smartgate/internal/audit"
	"smartgate/internal/changes"
	"smartgate/internal/config"
	"smartgate/internal/server"
)

// setClients makes RunParallel use about n goroutines (n rounded up to a
// multiple of GOMAXPROCS) and returns how many it will use.
func setClients(b *testing.B, n int) int {
	p := runtime.GOMAXPROCS(0)
	per := (n + p - 1) / p
	b.SetParallelism(per)
	return per * p
}

// BenchmarkJWKSHandler serves GET /oauth2/jwks through the whole handler
// chain (request id, proxies, logging, metrics, security headers, CORS) of
// a dev-mode server on SQLite, in process: no network, and a logger that
// discards (the Logger middleware still runs, its handler is disabled).
//
//   - serial: one goroutine, so ns/op is the CPU one request costs.
//   - clients=16: 16 goroutines on every core, so ns/op is the inverse of
//     the throughput of this machine.
func BenchmarkJWKSHandler(b *testing.B) {
	h := newHandler(b)
	do := func(b *testing.B) bool {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/oauth2/jwks", nil))
		if rec.Code != http.StatusOK {
			b.Errorf("GET /oauth2/jwks: status %d: %s", rec.Code, rec.Body.String())
			return false
		}
		return true
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if !do(b) {
				return
			}
		}
	})
	b.Run("clients=16", func(b *testing.B) {
		setClients(b, 16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !do(b) {
					return
				}
			}
		})
	})
}

// newHandler builds a server the way internal/server's tests do.
func newHandler(b *testing.B) http.Handler {
	h, _ := newServer(b, nil)
	return h
}

// newServer builds a dev-mode server on SQLite, with extra configuration
// flags (config keys such as "rate_limits.enabled"), and returns its
// handler and the app under it. Its issuer is http://127.0.0.1:8080.
func newServer(b *testing.B, extra map[string]string) (http.Handler, *app.App) {
	b.Helper()
	return openServer(b, b.TempDir(), extra)
}

// openServer is newServer on the data dir dir.
func openServer(b *testing.B, dir string, extra map[string]string) (http.Handler, *app.App) {
	b.Helper()
	flags := map[string]string{"dev": "true", "data_dir": dir}
	for k, v := range extra {
		flags[k] = v
	}
	cfg, err := config.Load(config.Options{Flags: flags})
	if err != nil {
		b.Fatalf("config.Load: %v", err)
	}
	ctx := context.Background()
	a, err := app.Open(ctx, cfg, slog.New(slog.DiscardHandler), app.Options{InitKeys: true})
	if err != nil {
		b.Fatalf("app.Open: %v", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	feed := changes.New(a.Store, time.Second, nil)
	aw := audit.New(a.Store, audit.Options{BatchSize: cfg.Audit.BatchSize, FlushInterval: cfg.Audit.FlushInterval.D(), QueueSize: cfg.Audit.QueueSize})
	srv := server.New(a, "http://127.0.0.1:8080", feed, aw)
	if err := srv.Start(runCtx); err != nil {
		stop()
		a.Close()
		b.Fatalf("server.Start: %v", err)
	}
	b.Cleanup(func() {
		stop()
		aw.Close()
		a.Close()
	})
	return srv.Handler(), a
}

// BenchmarkJWKSOverHTTP fetches the JWKS at $BENCH_URL over real HTTP with
// about 16 concurrent keep-alive clients. It skips when BENCH_URL is unset:
// ./bench/run starts smartgate and the peers on loopback and runs it against
// each, measuring the server's CPU from outside. Only loopback URLs are
// accepted.
//
// Metrics: req/s (throughput), and client-cpu-us/req, this process's own
// CPU per request: the load generator shares the machine with the server.
func BenchmarkJWKSOverHTTP(b *testing.B) {
	target := os.Getenv("BENCH_URL")
	if target == "" {
		b.Skip("BENCH_URL is not set; ./bench/run starts the servers and sets it")
	}
	if err := loopbackOnly(target); err != nil {
		b.Fatal(err)
	}
	clients := setClients(b, 16)
	tr := &http.Transport{
		MaxIdleConns:        2 * clients,
		MaxIdleConnsPerHost: 2 * clients, // every client keeps its connection
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	if err := checkJWKS(c, target); err != nil {
		b.Fatal(err)
	}

	var failed atomic.Bool
	cpu0, cpuOK := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 8<<10)
		for pb.Next() {
			resp, err := c.Get(target)
			if err == nil {
				_, err = io.CopyBuffer(io.Discard, resp.Body, buf)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				if failed.CompareAndSwap(false, true) {
					b.Errorf("GET %s: %v", target, err)
				}
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	reportCPU(b, cpu0, cpuOK, b.N, "client-cpu-us/req")
}

// checkJWKS makes sure target answers with a JSON Web Key Set before the
// timed loop starts, so a wrong URL fails with a clear message.
func checkJWKS(c *http.Client, target string) error {
	resp, err := c.Get(target)
	if err != nil {
		return fmt.Errorf("GET %s: %w", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", target, err)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &set) != nil || len(set.Keys) == 0 {
		return fmt.Errorf("GET %s: status %d, want 200 with a non-empty JWKS; body %.200s", target, resp.StatusCode, body)
	}
	return nil
}

// loopbackOnly refuses any target that is not on this machine's loopback.
func loopbackOnly(target string) error {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("BENCH_URL %q is not an http(s) URL", target)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("BENCH_URL %q: only loopback targets (127.0.0.0/8, ::1, localhost) may be benchmarked", target)
}
