package httpx

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Admission runs at most a fixed number of requests at once and lets the
// others wait in arrival order. It shapes how requests share the CPU; it
// never refuses one: a request that has waited maxWait runs anyway (a
// stuck or slow request must not hold the others back for longer), and is
// counted.
//
// Why: with more goroutines than cores, Go's scheduler runs the request it
// readied last first, SQLite's connections contend for its page-cache
// mutex, and each request's pages push the others' out of the CPU caches.
// Under load a few requests then wait far longer than the rest. Holding
// the surplus in a FIFO queue before any work starts keeps the running set
// small and serves the waiting in order (docs/performance.md, "Admission").
type Admission struct {
	slots    chan struct{} // a send takes a slot; blocked senders queue FIFO
	maxWait  time.Duration
	waiting  prometheus.Gauge
	waited   prometheus.Histogram
	overflow prometheus.Counter
}

// NewAdmission admits n requests at once (n ≥ 1) and registers its
// metrics, named smartgate_<name>_..., on reg (nil: none).
func NewAdmission(n int, maxWait time.Duration, name string, reg prometheus.Registerer) *Admission {
	a := &Admission{
		slots:   make(chan struct{}, max(n, 1)),
		maxWait: maxWait,
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smartgate_" + name + "_waiting", Help: "Requests waiting for one of the running slots.",
		}),
		waited: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "smartgate_" + name + "_wait_seconds", Help: "How long requests that found every slot taken waited for one.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		overflow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartgate_" + name + "_overflow_total", Help: "Requests that ran without a slot after waiting the longest wait.",
		}),
	}
	if reg != nil {
		reg.MustRegister(a.waiting, a.waited, a.overflow)
	}
	return a
}

// Enter waits for a slot. held says whether the caller got one and must
// call Leave when done; without one (the longest wait passed) it runs
// anyway. err is ctx's error when the caller went away while waiting: the
// request must not run then.
func (a *Admission) Enter(ctx context.Context) (held bool, err error) {
	select {
	case a.slots <- struct{}{}:
		return true, nil
	default:
	}
	a.waiting.Inc()
	start := time.Now()
	t := time.NewTimer(a.maxWait)
	defer func() {
		t.Stop()
		a.waiting.Dec()
		a.waited.Observe(time.Since(start).Seconds())
	}()
	select {
	case a.slots <- struct{}{}:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	case <-t.C:
		a.overflow.Inc()
		return false, nil
	}
}

// Leave gives back the slot Enter took.
func (a *Admission) Leave() { <-a.slots }
