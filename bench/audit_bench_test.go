package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"smartgate/internal/store"
)

// BenchmarkAuditTrail is the audit writer's batch (audit.batch_size, 256)
// on a SQLite trail that already holds many events, each naming a random
// one of 6,160 patients, as the patient-scoped searches of bench/data.sh's
// 1M set do. Each such event has an entry in the index by patient, on a
// random page of it, and every page a commit changes goes whole into the
// WAL; since that index is written in bulk every 5 s (audit_patient), a
// run needs more than 5 s of batches (-benchtime 1000x or more) to count
// its cost. The trail is BENCH_AUDIT_EVENTS events (default 200,000),
// written before the timer starts; patient=none is the same batch naming
// no patient (a system/ token's read), and actor=user the batch of a
// patient-facing app, whose actor is the patient's user (as random).
//
//	BENCH_AUDIT_EVENTS=1000000 go test ./bench -run '^$' -bench AuditTrail -benchtime 1000x
func BenchmarkAuditTrail(b *testing.B) {
	n := 200_000
	if v := os.Getenv("BENCH_AUDIT_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			b.Fatalf("BENCH_AUDIT_EVENTS=%q: want a whole number", v)
		}
	}
	ctx := context.Background()
	st := openStore(b, filepath.Join(b.TempDir(), "smartgate.db"))
	r := rand.New(rand.NewPCG(1, 2))
	for done := 0; done < n; done += 10_000 {
		if err := st.AppendAudit(ctx, searchEvents(r, min(10_000, n-done), true)); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name           string
		patient, actor bool
	}{{"patient=random", true, false}, {"patient=none", false, false}, {"patient=random,actor=user", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			batches := make([][]store.AuditEvent, 64)
			for i := range batches {
				batches[i] = searchEvents(r, 256, c.patient)
				if c.actor {
					// A patient-facing app: its user, the patient's own.
					for j := range batches[i] {
						batches[i][j].Actor = "user:" + batches[i][j].Patient
					}
				}
			}
			cpu0, ok := processCPU()
			i := 0
			for b.Loop() {
				if err := st.AppendAudit(ctx, batches[i%len(batches)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i*256), "ns/event")
			reportCPU(b, cpu0, ok, i*256, "cpu-us/event")
		})
	}
}

// searchEvents are n audit events of patient-scoped searches, each of a
// random one of 6,160 patients (none when patient is false).
func searchEvents(r *rand.Rand, n int, patient bool) []store.AuditEvent {
	out := make([]store.AuditEvent, n)
	for i := range out {
		p := ""
		if patient {
			p = "syn-1-" + strconv.Itoa(r.IntN(6160))
		}
		out[i] = store.AuditEvent{Time: time.Now().UTC(), RequestID: fmt.Sprintf("%032x", r.Uint64()),
			Actor: "client:bench-app", ClientID: "bench-app", Patient: p, Action: "fhir.search", Outcome: "success",
			Detail: `{"query":"code=http%3A%2F%2Floinc.org%7C8867-4&date=ge2024-01-01&patient=` + p + `","type":"Observation"}`}
	}
	return out
}
