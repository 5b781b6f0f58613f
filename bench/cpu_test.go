package bench

import (
	"testing"
	"time"
)

// reportCPU reports the process's CPU time since cpu0 (from processCPU,
// which ok says worked) divided by n, as unit: the benchmark timer's own
// accounting is wall time.
func reportCPU(b *testing.B, cpu0 time.Duration, ok bool, n int, unit string) {
	if cpu1, _ := processCPU(); ok && n > 0 {
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(n), unit)
	}
}
