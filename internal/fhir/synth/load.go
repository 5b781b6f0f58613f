package synth

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"smartgate/internal/fhir"
	"smartgate/internal/problem"
)

// Loader stores a generated set through the FHIR API's seed path
// (validated and indexed as every FHIR write is, no access check): charts
// are built, validated and indexed on every core, and written by one
// goroutine in order (or by Writers at once, for PostgreSQL), about Batch
// resources per transaction (SQLite has one writer). At most a few charts
// per core, and a batch per writer, are in memory at once.
type Loader struct {
	API       *fhir.API
	Generator *Generator
	// Batch is the number of resources per transaction (default 1000).
	Batch int
	// Workers build charts (default GOMAXPROCS).
	Workers int
	// Writers is how many transactions write at once (default 1). SQLite
	// has one writer anyway; PostgreSQL takes several. The Groups are
	// written last, after every chart.
	Writers int

	charts    atomic.Int64
	resources atomic.Int64
	bulk      atomic.Pointer[fhir.BulkLoad]
}

// Summary is what a load did.
type Summary struct {
	Patients  int            `json:"patients"`
	Seed      uint64         `json:"seed"`
	Resources int            `json:"resources"`
	Created   int            `json:"created"`
	Updated   int            `json:"updated"`
	Unchanged int            `json:"unchanged"`
	ByType    map[string]int `json:"by_type"`
	Seconds   float64        `json:"seconds"`
	// IndexSeconds is the part of Seconds spent building the search
	// indexes at the end (a load into an empty SQLite store).
	IndexSeconds float64  `json:"index_seconds,omitempty"`
	PerSecond    float64  `json:"resources_per_second"`
	Groups       []string `json:"groups"`
	First        string   `json:"first_patient"`
	Last         string   `json:"last_patient"`
}

// Progress is how many patients' charts and how many resources are stored.
func (l *Loader) Progress() (patients, resources int64) {
	return l.charts.Load(), l.resources.Load()
}

// Indexing says the load is building the search indexes it deferred.
func (l *Loader) Indexing() bool { return l.bulk.Load().Building() }

// job is one unit of work: the directory (index -1), a chart, or the
// Groups (index Patients()).
type job struct {
	i    int
	done chan built
}

type built struct {
	prepared []fhir.PreparedSeed
	types    []string
	err      error
}

func (l *Loader) build(i int) built {
	var rs []Resource
	switch g := l.Generator; {
	case i < 0:
		rs = g.Shared()
	case i == g.Patients():
		rs = g.Groups()
	default:
		rs = g.Chart(i)
	}
	out := built{prepared: make([]fhir.PreparedSeed, 0, len(rs)), types: make([]string, 0, len(rs))}
	for _, r := range rs {
		p, err := l.API.PrepareSeed(fhir.SeedResource{Type: r.Type, ID: r.ID, Body: r.Body})
		if err != nil {
			// The package's tests keep every resource storable: a bug.
			return built{err: fmt.Errorf("generated %s/%s cannot be stored (a smartgate bug; please report it): %s", r.Type, r.ID, describe(err))}
		}
		out.prepared = append(out.prepared, p)
		out.types = append(out.types, r.Type)
	}
	return out
}

func describe(err error) string {
	var pe *problem.Error
	if errors.As(err, &pe) {
		return pe.Description
	}
	return err.Error()
}

// Run generates and stores the whole set: the directory, every chart, the
// Groups. On an error, what was committed stays (each batch is one
// transaction); running again completes the set.
//
// Into an empty SQLite store the search indexes are built at the end
// (fhir.BulkLoad), also after an error or a cancelled ctx.
func (l *Loader) Run(ctx context.Context) (Summary, error) {
	bulk, err := l.API.BeginBulkLoad(ctx)
	if err != nil {
		return Summary{}, err
	}
	l.bulk.Store(bulk)
	start := time.Now()
	sum, err := l.run(ctx)
	if ierr := bulk.End(ctx); ierr != nil && err == nil {
		err = fmt.Errorf("building the search indexes: %w", ierr)
	}
	sum.IndexSeconds = bulk.Seconds
	elapsed := time.Since(start)
	sum.Resources = int(l.resources.Load())
	sum.Seconds = elapsed.Seconds()
	sum.PerSecond = float64(sum.Resources) / elapsed.Seconds()
	return sum, err
}

func (l *Loader) run(ctx context.Context) (Summary, error) {
	g := l.Generator
	batch, workers := l.Batch, l.Workers
	if batch <= 0 {
		batch = 1000
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// order holds the jobs in sequence; its capacity bounds the charts in
	// memory at once.
	order := make(chan job, 4*workers)
	work := make(chan job, 4*workers)
	go func() {
		defer close(order)
		defer close(work)
		for i := -1; i <= g.Patients(); i++ {
			j := job{i: i, done: make(chan built, 1)}
			select {
			case order <- j:
			case <-ctx.Done():
				return
			}
			work <- j
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				if ctx.Err() != nil {
					j.done <- built{err: ctx.Err()}
					continue
				}
				j.done <- l.build(j.i)
			}
		}()
	}
	defer wg.Wait()
	defer func() {
		cancel()
		for range order { // let the feeder finish
		}
	}()

	sum := Summary{Patients: g.Patients(), Seed: g.Seed(), ByType: map[string]int{}, Groups: g.GroupIDs()}
	if g.Patients() > 0 {
		sum.First, sum.Last = g.PatientID(0), g.PatientID(g.Patients()-1)
	}
	writers := max(l.Writers, 1)
	type batchOf struct {
		ps     []fhir.PreparedSeed
		charts int
	}
	batches := make(chan batchOf, writers)
	var mu sync.Mutex
	var werr error
	var ww sync.WaitGroup
	for range writers {
		ww.Add(1)
		go func() {
			defer ww.Done()
			for b := range batches {
				n, err := l.API.SeedPrepared(ctx, b.ps)
				mu.Lock()
				if err != nil && werr == nil {
					werr = err
					cancel()
				}
				sum.Created += n.Created
				sum.Updated += n.Updated
				sum.Unchanged += n.Unchanged
				mu.Unlock()
				if err == nil {
					l.resources.Add(int64(len(b.ps)))
					l.charts.Add(int64(b.charts))
				}
			}
		}()
	}
	// wait closes the batches and waits for the writers; the first error.
	waited := false
	wait := func() error {
		if !waited {
			waited = true
			close(batches)
			ww.Wait()
		}
		return werr
	}
	defer wait()
	var pending []fhir.PreparedSeed
	charts := 0
	send := func() error {
		if len(pending) == 0 {
			return nil
		}
		select {
		case batches <- batchOf{pending, charts}:
		case <-ctx.Done():
			if err := wait(); err != nil {
				return err
			}
			return ctx.Err()
		}
		pending, charts = nil, 0
		return nil
	}
	for j := range order {
		var b built
		select {
		case b = <-j.done:
		case <-ctx.Done():
			if err := wait(); err != nil {
				return sum, err
			}
			return sum, ctx.Err()
		}
		if b.err != nil {
			return sum, b.err
		}
		for _, t := range b.types {
			sum.ByType[t]++
		}
		if j.i == g.Patients() && writers > 1 {
			// The Groups after every chart is stored.
			if err := send(); err != nil {
				return sum, err
			}
			if err := wait(); err != nil {
				return sum, err
			}
			n, err := l.API.SeedPrepared(ctx, b.prepared)
			if err != nil {
				return sum, err
			}
			sum.Created += n.Created
			sum.Updated += n.Updated
			sum.Unchanged += n.Unchanged
			l.resources.Add(int64(len(b.prepared)))
			continue
		}
		pending = append(pending, b.prepared...)
		if j.i >= 0 && j.i < g.Patients() {
			charts++
		}
		if len(pending) >= batch {
			if err := send(); err != nil {
				return sum, err
			}
		}
	}
	if err := send(); err != nil {
		return sum, err
	}
	if err := wait(); err != nil {
		return sum, err
	}
	return sum, nil
}
