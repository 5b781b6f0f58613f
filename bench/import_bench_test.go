package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"smartgate/internal/fhir"
	"smartgate/internal/fhir/importer"
)

// BenchmarkImport measures `smartgate import` of a generated NDJSON file
// into a fresh SQLite store: reading, validation and indexing (in parallel)
// and the chunked writes, as the command does them. Each round imports
// the same file into a new database; resources/s is the throughput.
// The file is 1 Patient and 9 Observations (vital signs and laboratory
// results, US Core shaped) per patient; entries=N sets its size.
//
//	go test ./bench -run '^$' -bench Import -benchtime 3x
//
// BENCH_IMPORT_ENTRIES=N changes the file's size (default 50,000).
func BenchmarkImport(b *testing.B) {
	n := 50_000
	if v, err := strconv.Atoi(os.Getenv("BENCH_IMPORT_ENTRIES")); err == nil && v > 0 {
		n = v
	}
	{
		b.Run(fmt.Sprintf("sqlite/ndjson/entries=%d", n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "data.ndjson")
			size := writeNDJSON(b, path, n)
			b.SetBytes(size)
			b.ReportAllocs()
			var total int
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				db := openStore(b, filepath.Join(b.TempDir(), "smartgate.db"))
				im := importer.New(fhir.New(fhir.Deps{Store: db, Base: "http://127.0.0.1:8080/fhir"}), importer.Options{})
				c0, _ := processCPU()
				b.StartTimer()
				s := im.Import(context.Background(), []string{path})
				b.StopTimer()
				c1, _ := processCPU()
				cpu += c1 - c0
				b.StartTimer()
				if !s.OK() || s.Created != n {
					b.Fatalf("import: %+v", s)
				}
				total += s.Created
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "resources/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(total), "cpu-µs/resource")
		})
	}
}

// writeNDJSON writes n resources: per patient, the Patient and 9
// Observations referring to it. It returns the file's size.
func writeNDJSON(b testing.TB, path string, n int) int64 {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	codes := [][2]string{{"8867-4", "Heart rate"}, {"9279-1", "Respiratory rate"}, {"8310-5", "Body temperature"}, {"29463-7", "Body weight"},
		{"8302-2", "Body height"}, {"2339-0", "Glucose"}, {"2093-3", "Cholesterol"}, {"718-7", "Hemoglobin"}, {"2160-0", "Creatinine"}}
	for i := 0; i < n; i++ {
		p := i / 10
		if i%10 == 0 {
			fmt.Fprintf(w, `{"resourceType":"Patient","id":"bp%d","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},"identifier":[{"system":"http://hospital.example.org/mrn","value":"MRN%d"}],"name":[{"family":"Family%d","given":["Given%d"]}],"gender":"%s","birthDate":"19%02d-0%d-1%d"}`+"\n",
				p, p, p, p, []string{"female", "male"}[p%2], p%100, 1+p%9, p%10)
			continue
		}
		c := codes[i%10-1]
		cat := "vital-signs"
		if i%10 > 5 {
			cat = "laboratory"
		}
		fmt.Fprintf(w, `{"resourceType":"Observation","id":"bo%d","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"%s"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"%s","display":"%s"}],"text":"%s"},"subject":{"reference":"Patient/bp%d"},"effectiveDateTime":"2024-%02d-%02dT10:00:00Z","valueQuantity":{"value":%d.%d,"unit":"1","system":"http://unitsofmeasure.org","code":"1"}}`+"\n",
			i, cat, c[0], c[1], c[1], p, 1+i%12, 1+i%28, 40+i%100, i%10)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	f.Close()
	return st.Size()
}
