// Package changes follows the store's change sequence so that every node
// refreshes its caches (clients, keys, revocations, settings) within a
// second of a change made by any other process: it polls at least every
// poll interval and, on PostgreSQL, wakes at once on NOTIFY.
package changes

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"smartgate/internal/store"
)

// Handler refreshes whatever a node caches about a topic; keys are the
// changed keys within the topic (possibly empty, possibly repeated).
type Handler func(ctx context.Context, keys []string) error

// Feed dispatches changes to handlers by topic.
type Feed struct {
	st    store.Changes
	poll  time.Duration
	log   *slog.Logger
	clock func() time.Time

	mu       sync.Mutex
	handlers map[string][]Handler
	last     int64
	lastSync atomic.Int64 // unix nanos of the last complete, successful round
	started  atomic.Bool
}

// New returns a feed polling st every poll interval.
func New(st store.Changes, poll time.Duration, log *slog.Logger) *Feed {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Feed{st: st, poll: poll, log: log, clock: time.Now, handlers: map[string][]Handler{}}
}

// Subscribe registers fn for topic. Subscribe before Start.
func (f *Feed) Subscribe(topic string, fn Handler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[topic] = append(f.handlers[topic], fn)
}

// Start notes the current end of the sequence (the node loaded its caches
// just before) and follows it until ctx ends.
func (f *Feed) Start(ctx context.Context) error {
	seq, err := f.st.LatestChange(ctx)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.last = seq
	f.mu.Unlock()
	f.lastSync.Store(f.clock().UnixNano())
	f.started.Store(true)
	notes := f.st.Notifications(ctx)
	go f.run(ctx, notes)
	return nil
}

func (f *Feed) run(ctx context.Context, notes <-chan struct{}) {
	t := time.NewTicker(f.poll)
	defer t.Stop()
	prune := time.NewTicker(10 * time.Minute)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case _, ok := <-notes:
			if !ok {
				notes = nil // the listener ended; polling goes on
			}
		case <-prune.C:
			if err := f.st.PruneChanges(ctx, f.clock().Add(-time.Hour)); err != nil && ctx.Err() == nil {
				f.log.Warn("pruning the change sequence failed", "error", err.Error())
			}
			continue
		}
		if err := f.Sync(ctx); err != nil && ctx.Err() == nil {
			f.log.Warn("change feed round failed; will retry", "error", err.Error())
		}
	}
}

// Sync reads every change since the last round and runs each affected
// topic's handlers once. On any failure the position does not move, so the
// round is retried, and the node's view counts as stale until it succeeds.
func (f *Feed) Sync(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		cs, err := f.st.ChangesSince(ctx, f.last, 1000)
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			break
		}
		topics := map[string][]string{}
		for _, c := range cs {
			topics[c.Topic] = append(topics[c.Topic], c.Key)
		}
		for topic, keys := range topics {
			for _, h := range f.handlers[topic] {
				if err := h(ctx, keys); err != nil {
					return err
				}
			}
		}
		f.last = cs[len(cs)-1].Seq
		f.log.Debug("changes applied", "through", f.last, "count", len(cs))
		if len(cs) < 1000 {
			break
		}
	}
	f.lastSync.Store(f.clock().UnixNano())
	return nil
}

// Staleness is how long ago the node's view was last known current. It is
// zero before Start.
func (f *Feed) Staleness() time.Duration {
	if !f.started.Load() {
		return 0
	}
	return f.clock().Sub(time.Unix(0, f.lastSync.Load()))
}

// Position is the last sequence number applied.
func (f *Feed) Position() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}
