package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"smartgate/internal/fhir"
	"smartgate/internal/fhir/importer"
	"smartgate/internal/fhir/synth"
	"smartgate/internal/token"
)

// The in-process halves of bench/data.sh (which measures the same over
// HTTP on data sets of 100k and 1M resources), for CPU profiles of the
// export writer and the importer without a network or a second process:
//
//	go test ./bench -run '^$' -bench 'Export|ImportSynthetic' -benchtime 3x -cpuprofile cpu.out
//	go tool pprof -top -cum bench.test cpu.out
//
// Both use the synthetic US Core data of `smartgate seed` (about 162
// resources a patient) on SQLite; BENCH_PATIENTS sets the patients (100,
// about 16,000 resources).

func benchPatients(b *testing.B) int {
	n := 100
	if v := os.Getenv("BENCH_PATIENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("BENCH_PATIENTS=%q: want a number of patients", v)
		}
	}
	return n
}

// BenchmarkExport measures a system-level Bulk Data export of everything,
// from the kick-off to the completed manifest (the exporter reading every
// resource a page at a time and storing the NDJSON chunks), through the
// whole handler chain of a dev-mode server, and then the download of the
// files (export-download). resources/s is what bench/data.sh's export
// target (50,000 resources/s) is about.
func BenchmarkExport(b *testing.B) {
	h, a := newServer(b, map[string]string{"rate_limits.enabled": "false"})
	n := benchPatients(b)
	l := &synth.Loader{API: fhir.New(fhir.Deps{Store: a.Store, Base: "http://127.0.0.1:8080/fhir"}), Generator: synth.New(synth.Options{Patients: n, Seed: 1})}
	if _, err := l.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	tokens := token.New(a.Keys, token.NewRevocations(a.Store, nil), token.Options{Issuer: "http://127.0.0.1:8080", Audience: "http://127.0.0.1:8080/fhir"})
	tok, err := tokens.Issue(token.Claims{Subject: "bench", ClientID: "bench", Scope: "system/*.rs", Expiry: time.Now().Add(time.Hour).Unix(), Grant: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	do := func(method, target string, hdr ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, target, nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	type manifest struct {
		Output []struct {
			URL   string `json:"url"`
			Count int64  `json:"count"`
		} `json:"output"`
	}
	// export runs one export to its manifest and returns the status path.
	export := func(b *testing.B) (string, manifest) {
		rec := do("GET", "/fhir/$export", "Prefer", "respond-async")
		if rec.Code != http.StatusAccepted {
			b.Fatalf("kick-off: %d %s", rec.Code, rec.Body.String())
		}
		status := rec.Header().Get("Content-Location")
		status = status[len("http://127.0.0.1:8080"):]
		for {
			rec = do("GET", status)
			if rec.Code == http.StatusOK {
				break
			}
			if rec.Code != http.StatusAccepted {
				b.Fatalf("status: %d %s", rec.Code, rec.Body.String())
			}
			time.Sleep(2 * time.Millisecond)
		}
		var m manifest
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			b.Fatal(err)
		}
		return status, m
	}
	b.Run(fmt.Sprintf("export/patients=%d", n), func(b *testing.B) {
		var total int64
		for b.Loop() {
			status, m := export(b)
			for _, f := range m.Output {
				total += f.Count
			}
			b.StopTimer()
			do("DELETE", status)
			b.StartTimer()
		}
		b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "resources/s")
	})
	b.Run(fmt.Sprintf("export-download/patients=%d", n), func(b *testing.B) {
		b.StopTimer()
		status, m := export(b)
		defer do("DELETE", status)
		b.StartTimer()
		var total, size int64
		for b.Loop() {
			for _, f := range m.Output {
				rec := do("GET", f.URL[len("http://127.0.0.1:8080"):])
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d", f.URL, rec.Code)
				}
				total += f.Count
				size += int64(rec.Body.Len())
			}
		}
		b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "resources/s")
		b.ReportMetric(float64(size)/(1<<20)/b.Elapsed().Seconds(), "MB/s")
	})
}

// BenchmarkImportSynthetic measures `smartgate import` of the synthetic
// data set as NDJSON, one file per type (as an export writes it), into a
// fresh SQLite store per iteration: reading, validating and indexing on
// every core, and the chunked writes by one goroutine.
func BenchmarkImportSynthetic(b *testing.B) {
	n := benchPatients(b)
	dir := b.TempDir()
	files := writeSynthetic(b, dir, n)
	b.Run(fmt.Sprintf("sqlite/patients=%d", n), func(b *testing.B) {
		var total int
		for b.Loop() {
			b.StopTimer()
			db := openStore(b, filepath.Join(b.TempDir(), "smartgate.db"))
			im := importer.New(fhir.New(fhir.Deps{Store: db, Base: "http://127.0.0.1:8080/fhir"}), importer.Options{})
			b.StartTimer()
			s := im.Import(context.Background(), files)
			if !s.OK() {
				b.Fatalf("import: %+v", s.Counts)
			}
			total += s.Total()
		}
		b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "resources/s")
	})
}

// writeSynthetic writes the data set of n patients (seed 1) as NDJSON
// files, one per resource type, and returns their paths.
func writeSynthetic(b *testing.B, dir string, n int) []string {
	b.Helper()
	g := synth.New(synth.Options{Patients: n, Seed: 1})
	files := map[string]*bufio.Writer{}
	var closers []*os.File
	var paths []string
	err := g.Each(func(rs []synth.Resource) error {
		for _, r := range rs {
			w := files[r.Type]
			if w == nil {
				f, err := os.Create(filepath.Join(dir, r.Type+".ndjson"))
				if err != nil {
					return err
				}
				closers = append(closers, f)
				paths = append(paths, f.Name())
				w = bufio.NewWriter(f)
				files[r.Type] = w
			}
			w.Write(r.Body)
			w.WriteByte('\n')
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, w := range files {
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	for _, f := range closers {
		f.Close()
	}
	return paths
}
