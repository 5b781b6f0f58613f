package bench

import (
	"context"
	"testing"

	"smartgate/internal/fhir"
	"smartgate/internal/fhir/synth"
)

// BenchmarkSeed measures `smartgate seed`: generating synthetic US Core
// charts (about 165 resources a patient), and storing them into a fresh
// store the way the command does (charts built, validated and indexed on
// every core; written by one goroutine on SQLite and four on PostgreSQL,
// 1000 resources per transaction). Each iteration seeds 50 patients
// (about 8,300 resources). resources/s is the figure to compare;
// cpu-us/resource (user + system time of the process over all cores) is
// what it costs the machine. See docs/performance.md, "Seed".
//
//	go test ./bench -run '^$' -bench Seed -benchtime 3x
func BenchmarkSeed(b *testing.B) {
	const patients = 50
	b.Run("generate", func(b *testing.B) {
		g := synth.New(synth.Options{Patients: patients, Seed: 1})
		n := 0
		for b.Loop() {
			for i := range patients {
				n += len(g.Chart(i))
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "resources/s")
	})
	b.Run("generate+prepare", func(b *testing.B) {
		g := synth.New(synth.Options{Patients: patients, Seed: 1})
		api := fhir.New(fhir.Deps{Base: "http://127.0.0.1:8080/fhir"})
		n := 0
		for b.Loop() {
			for i := range patients {
				for _, r := range g.Chart(i) {
					if _, err := api.PrepareSeed(fhir.SeedResource{Type: r.Type, ID: r.ID, Body: r.Body}); err != nil {
						b.Fatal(err)
					}
					n++
				}
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "resources/s")
	})
	for _, be := range backends {
		b.Run("store/"+be.name, func(b *testing.B) {
			cpu0, cpuOK := processCPU()
			n := 0
			for k := 0; b.Loop(); k++ {
				b.StopTimer()
				db := be.open(b)
				l := &synth.Loader{API: fhir.New(fhir.Deps{Store: db, Base: "http://127.0.0.1:8080/fhir"}),
					Generator: synth.New(synth.Options{Patients: patients, Seed: uint64(k + 1)})}
				if be.name == "postgres" {
					l.Writers = 4 // as smartgate seed does
				}
				b.StartTimer()
				sum, err := l.Run(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				n += sum.Resources
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "resources/s")
			// includes the untimed store setup, a small part
			reportCPU(b, cpu0, cpuOK, n, "cpu-us/resource")
		})
	}
}
