package validate

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkResource validates a US Core blood-pressure Observation of about
// 4 KB (components, reference ranges, narrative), the common write.
func BenchmarkResource(b *testing.B) { benchmarkFile(b, "observation-blood-pressure.json") }

// BenchmarkResourceBundle validates a transaction Bundle with nested
// resources.
func BenchmarkResourceBundle(b *testing.B) { benchmarkFile(b, "bundle-transaction.json") }

func benchmarkFile(b *testing.B, name string) {
	body, err := os.ReadFile(filepath.Join("testdata", "valid", name))
	if err != nil {
		b.Fatal(err)
	}
	Known("Patient") // load the definitions outside the timing
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, issues := Resource(body); issues != nil {
			b.Fatal(issues)
		}
	}
}

// BenchmarkLoad is the one-time cost of decoding the embedded definitions.
func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		if _, err := buildSchema(structuresGz); err != nil {
			b.Fatal(err)
		}
	}
}
