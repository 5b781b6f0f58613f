package synth

import "testing"

// BenchmarkChart measures building one patient's chart (about 150
// resources, encoded).
func BenchmarkChart(b *testing.B) {
	g := New(Options{Patients: 1000, Seed: 1})
	n, i := 0, 0
	for b.Loop() {
		n += len(g.Chart(i % 1000))
		i++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "resources/s")
}
