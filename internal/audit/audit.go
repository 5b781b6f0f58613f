// Package audit records who did what, for which client and patient, with
// which outcome. Record never waits for the database: events are queued and
// written in batches off the request path. A crash loses at most what was
// queued and not yet flushed: at most one flush interval of events (and never
// more than the queue size). Shutdown flushes everything.
package audit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"smartgate/internal/requestid"
	"smartgate/internal/store"
)

// Outcomes.
const (
	Success = "success"
	Failure = "failure"
)

// Event is what a feature records; time and request id are filled in.
type Event struct {
	Actor, ClientID, Patient, Action, Outcome string
	Detail                                    string // JSON object; never a secret
}

// Options configure a Writer.
type Options struct {
	BatchSize     int
	FlushInterval time.Duration
	QueueSize     int
	Log           *slog.Logger
	Clock         func() time.Time
}

// Writer batches events into the store.
type Writer struct {
	st    store.Audit
	opts  Options
	queue chan store.AuditEvent
	done  chan struct{}

	mu     sync.RWMutex // held for reading while queueing; Close takes it to close the queue
	closed bool

	written, failed atomic.Int64
}

// New starts a writer; Close flushes and stops it.
func New(st store.Audit, opts Options) *Writer {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	w := &Writer{st: st, opts: opts, queue: make(chan store.AuditEvent, opts.QueueSize), done: make(chan struct{})}
	go w.loop()
	return w
}

// Record queues an event. When the queue is full it waits (back-pressure
// rather than silently dropping audit records) until ctx ends.
func (w *Writer) Record(ctx context.Context, e Event) {
	ev := store.AuditEvent{
		Time: w.opts.Clock().UTC(), RequestID: requestid.From(ctx),
		Actor: e.Actor, ClientID: e.ClientID, Patient: e.Patient,
		Action: e.Action, Outcome: e.Outcome, Detail: e.Detail,
	}
	if ev.Detail == "" {
		ev.Detail = "{}"
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		// A handler still running after shutdown gave up waiting for it.
		w.failed.Add(1)
		w.opts.Log.Error("audit event dropped: the writer is closed", "action", e.Action, "request_id", ev.RequestID)
		return
	}
	select {
	case w.queue <- ev:
	case <-ctx.Done():
		w.failed.Add(1)
		w.opts.Log.Error("audit event dropped: queue full and request ended", "action", e.Action, "request_id", ev.RequestID)
	}
}

// QueueLen is the number of events waiting to be written.
func (w *Writer) QueueLen() int { return len(w.queue) }

// Counts returns events written and events lost since start.
func (w *Writer) Counts() (written, failed int64) { return w.written.Load(), w.failed.Load() }

func (w *Writer) loop() {
	defer close(w.done)
	t := time.NewTicker(w.opts.FlushInterval)
	defer t.Stop()
	batch := make([]store.AuditEvent, 0, w.opts.BatchSize)
	for {
		select {
		case ev, ok := <-w.queue:
			if !ok {
				w.flush(batch)
				return
			}
			batch = append(batch, ev)
			if len(batch) >= w.opts.BatchSize {
				w.flush(batch)
				batch = batch[:0]
			}
		case <-t.C:
			if len(batch) > 0 {
				w.flush(batch)
				batch = batch[:0]
			}
		}
	}
}

func (w *Writer) flush(batch []store.AuditEvent) {
	if len(batch) == 0 {
		return
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = w.st.AppendAudit(ctx, batch)
		cancel()
		if err == nil {
			w.written.Add(int64(len(batch)))
			return
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	w.failed.Add(int64(len(batch)))
	w.opts.Log.Error("audit batch lost after 3 attempts", "events", len(batch), "error", err.Error())
}

// Close writes everything queued and stops the writer. A Record after
// Close drops its event and logs it.
func (w *Writer) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	<-w.done
}
