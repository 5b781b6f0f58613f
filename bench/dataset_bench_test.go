package bench

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"smartgate/internal/fhir/synth"
	"smartgate/internal/token"
)

// BenchmarkDataSet runs bench/data.sh's search and include requests in
// process against a seeded data dir, for CPU profiles of the server's side
// without a network or a load generator:
//
//	cp -a ~/.cache/smartgate-bench/data/sqlite-100k-s1-v12-*/data /var/tmp/ds
//	BENCH_DATA_DIR=/var/tmp/ds BENCH_PATIENTS=616 go test ./bench -run '^$' \
//	  -bench DataSet -benchtime 2000x -cpuprofile cpu.out
//
// BENCH_DATA_DIR is the data dir (changed: the server writes audit events
// to it; use a copy), BENCH_PATIENTS the patients it was seeded with and
// BENCH_SEED its seed (1), BENCH_MAX_CONNS the SQLite readers (default
// 8), BENCH_CONFIG more settings, as key=value,key=value (e.g.
// audit.batch_size=100000,audit.queue_size=100000,audit.flush_interval=1h
// for a run without audit commits). Each request has its own
// patient/*.rs token of a random patient, as in the data benchmark;
// scoped is search without its patient parameter (the token's patient
// scope narrows it). search, scoped and include run one request at a
// time; search-16, scoped-16 and include-16 run 16 at once, as data.sh's
// clients do (compare their cpu-us/op).
func BenchmarkDataSet(b *testing.B) {
	dir := os.Getenv("BENCH_DATA_DIR")
	if dir == "" {
		b.Skip("BENCH_DATA_DIR is not set")
	}
	n := benchPatients(b)
	seed := uint64(1)
	if v, err := strconv.ParseUint(os.Getenv("BENCH_SEED"), 10, 64); err == nil {
		seed = v
	}
	extra := map[string]string{"rate_limits.enabled": "false"}
	if v := os.Getenv("BENCH_MAX_CONNS"); v != "" {
		extra["database_max_conns"] = v
	}
	for _, kv := range strings.Split(os.Getenv("BENCH_CONFIG"), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			extra[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	h, a := openServer(b, dir, extra)
	tokens := token.New(a.Keys, token.NewRevocations(a.Store, nil), token.Options{Issuer: "http://127.0.0.1:8080", Audience: "http://127.0.0.1:8080/fhir"})
	g := synth.New(synth.Options{Patients: n, Seed: seed})
	r := rand.New(rand.NewPCG(seed, 7))
	type req struct{ path, tok string }
	var search, scoped, include []req
	for len(search) < 200 {
		i := r.IntN(n)
		var obs []struct {
			Code struct {
				Coding []struct{ Code string } `json:"coding"`
			} `json:"code"`
			Effective string `json:"effectiveDateTime"`
		}
		for _, res := range g.Chart(i) {
			if res.Type != "Observation" {
				continue
			}
			var o struct {
				Code struct {
					Coding []struct{ Code string } `json:"coding"`
				} `json:"code"`
				Effective string `json:"effectiveDateTime"`
			}
			if json.Unmarshal(res.Body, &o) == nil && len(o.Code.Coding) > 0 && len(o.Effective) >= 10 {
				obs = append(obs, o)
			}
		}
		if len(obs) == 0 {
			continue
		}
		o := obs[r.IntN(len(obs))]
		d, err := time.Parse("2006-01-02", o.Effective[:10])
		if err != nil {
			b.Fatal(err)
		}
		p := g.PatientID(i)
		tok, err := tokens.Issue(token.Claims{Subject: "bench", ClientID: "bench", Scope: "patient/*.rs", Patient: p, Expiry: time.Now().Add(time.Hour).Unix(), Grant: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		q := url.Values{"patient": {p}, "code": {"http://loinc.org|" + o.Code.Coding[0].Code}, "date": {"ge" + d.AddDate(0, 0, -r.IntN(366)).Format("2006-01-02")}}
		search = append(search, req{"/fhir/Observation?" + q.Encode(), tok})
		// The same without the patient parameter: the token's patient
		// scope alone narrows it to the patient's compartment.
		q.Del("patient")
		scoped = append(scoped, req{"/fhir/Observation?" + q.Encode(), tok})
		include = append(include, req{"/fhir/MedicationRequest?patient=" + p + "&_include=MedicationRequest:medication&_include=MedicationRequest:requester", tok})
	}
	for _, c := range []struct {
		name string
		reqs []req
	}{{"search", search}, {"scoped", scoped}, {"include", include}} {
		do := func(b *testing.B, q req) {
			hr := httptest.NewRequest("GET", q.path, nil)
			hr.Header.Set("Authorization", "Bearer "+q.tok)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, hr)
			if rec.Code != http.StatusOK {
				b.Fatalf("%s: %d %.300s", q.path, rec.Code, rec.Body.String())
			}
		}
		b.Run(c.name, func(b *testing.B) {
			cpu0, cpuOK := processCPU()
			k := 0
			for b.Loop() {
				do(b, c.reqs[k%len(c.reqs)])
				k++
			}
			reportCPU(b, cpu0, cpuOK, b.N, "cpu-us/op")
		})
		// 16 requests at once, as data.sh's 16 clients: what concurrency
		// costs on top. ns/op is wall time; cpu-us/op is what to compare
		// with the serial run.
		b.Run(c.name+"-16", func(b *testing.B) {
			var next atomic.Int64
			b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
			cpu0, cpuOK := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					do(b, c.reqs[int(next.Add(1))%len(c.reqs)])
				}
			})
			reportCPU(b, cpu0, cpuOK, b.N, "cpu-us/op")
		})
	}
}
