package importer_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"smartgate/internal/fhir/importer"
)

// peakHeap samples the Go heap until stop is called and returns the
// largest HeapInuse seen (runtime.ReadMemStats every 10 ms; a sample
// after a forced GC first, so the baseline is what the test itself holds).
func peakHeap() (stop func() uint64) {
	runtime.GC()
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}

// orgLine is an Organization with pad repetitions of a sentence as its
// narrative (which is not indexed), so that a file is large for the rows
// it writes.
func orgLine(i, pad int) string {
	return fmt.Sprintf(`{"resourceType":"Organization","id":"org-%d","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">%s</div>"},"active":true,"name":"Organization %d"}`,
		i, strings.Repeat("Narrative padding. ", pad), i)
}

func writeLines(t testing.TB, path string, n int, head, sep, tail string, line func(int) string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString(head)
	for i := range n {
		if i > 0 {
			w.WriteString(sep)
		}
		w.WriteString(line(i))
	}
	w.WriteString(tail)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	f.Close()
	return st.Size()
}

// heapBound is what an import may hold on the Go heap, whatever the file's
// size: a few chunks of entries (with their index rows) in flight.
const heapBound = 64 << 20

// TestImportMemoryBounded checks that the Go heap never grows past
// heapBound, whatever the file's size: an NDJSON file of 30,000 resources
// of ~3.3 KB (~95 MB, larger than the bound) is imported into a real SQLite store, and
// a collection Bundle of 200,000 small entries (~90 MB) is read through the
// streaming Bundle reader (not written: writing 200,000 resources takes
// minutes on a CI machine, and the writes hold no more memory per entry than
// the NDJSON import already shows).
func TestImportMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 30,000 resources")
	}
	dir := t.TempDir()
	const n = 30_000
	nd := filepath.Join(dir, "orgs.ndjson")
	size := writeLines(t, nd, n, "", "\n", "\n", func(i int) string { return orgLine(i, 170) })
	if size <= heapBound {
		t.Fatalf("the file (%d bytes) must be larger than the heap bound for the test to mean anything", size)
	}
	im, _ := newImporter(t, importer.Options{})
	stop := peakHeap()
	s := im.Import(context.Background(), []string{nd})
	peak := stop()
	if !s.OK() || s.Created != n {
		t.Fatalf("import: %+v", s)
	}
	t.Logf("NDJSON: %d resources, %d MiB file, peak heap in use %d MiB", n, size>>20, peak>>20)
	if peak > heapBound {
		t.Errorf("peak heap in use %d MiB while importing a %d MiB file; want at most %d MiB", peak>>20, size>>20, heapBound>>20)
	}

	const entries = 200_000
	bundle := filepath.Join(dir, "orgs.json")
	size = writeLines(t, bundle, entries, `{"resourceType":"Bundle","type":"collection","entry":[`, ",", "]}", func(i int) string {
		return `{"fullUrl":"urn:uuid:` + fmt.Sprint(i) + `","resource":` + orgLine(i, 14) + `}`
	})
	if size <= heapBound {
		t.Fatalf("the Bundle (%d bytes) must be larger than the heap bound", size)
	}
	f, err := os.Open(bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stop = peakHeap()
	b := importer.NewBundleReader(bufio.NewReader(f))
	got := 0
	for {
		it, err := b.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
		if it.Err != nil || len(it.Entry.Resource) == 0 {
			t.Fatalf("entry %d: %v", it.Pos, it.Err)
		}
		got++
	}
	peak = stop()
	if got != entries {
		t.Fatalf("read %d entries, want %d", got, entries)
	}
	t.Logf("Bundle: %d entries, %d MiB file, peak heap in use %d MiB", entries, size>>20, peak>>20)
	if peak > heapBound {
		t.Errorf("peak heap in use %d MiB while reading a %d MiB Bundle; want at most %d MiB", peak>>20, size>>20, heapBound>>20)
	}
}
