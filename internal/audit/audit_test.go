package audit

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"smartgate/internal/requestid"
	"smartgate/internal/store"
	"smartgate/internal/store/sqlstore"
)

func TestWriterBatchesAndFlushesOnClose(t *testing.T) {
	st, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A long flush interval: only the batch size and Close write.
	w := New(st, Options{BatchSize: 10, FlushInterval: time.Hour, QueueSize: 100})
	ctx := requestid.With(context.Background(), "req-42")
	for i := 0; i < 25; i++ {
		w.Record(ctx, Event{Actor: "user:alice", ClientID: "app", Patient: "Patient/1", Action: "fhir.read", Outcome: Success, Detail: fmt.Sprintf(`{"i":%d}`, i)})
	}
	deadline := time.Now().Add(5 * time.Second)
	var got []store.AuditEvent
	for time.Now().Before(deadline) {
		got, _ = st.ListAudit(context.Background(), store.AuditFilter{Limit: 100})
		if len(got) >= 20 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(got) != 20 {
		t.Fatalf("before Close %d events written, want the two full batches (20)", len(got))
	}
	w.Close()
	got, _ = st.ListAudit(context.Background(), store.AuditFilter{Limit: 100})
	if len(got) != 25 {
		t.Fatalf("after Close %d events written, want 25", len(got))
	}
	if got[0].RequestID != "req-42" || got[0].Actor != "user:alice" || got[0].Patient != "Patient/1" || got[0].Outcome != Success {
		t.Errorf("event fields: %+v", got[0])
	}
	if written, failed := w.Counts(); written != 25 || failed != 0 {
		t.Errorf("Counts = %d written, %d failed", written, failed)
	}
}

func TestWriterFlushesOnInterval(t *testing.T) {
	st, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := New(st, Options{BatchSize: 1000, FlushInterval: 20 * time.Millisecond, QueueSize: 1000})
	defer w.Close()
	w.Record(context.Background(), Event{Actor: "system", Action: "server.start", Outcome: Success})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if got, _ := st.ListAudit(context.Background(), store.AuditFilter{}); len(got) == 1 {
			if got[0].Detail != "{}" {
				t.Errorf("empty detail stored as %q, want {}", got[0].Detail)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("a lone event was not flushed by the interval")
}

// A handler that outlives the shutdown must not crash the process.
func TestRecordAfterCloseIsDropped(t *testing.T) {
	st, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := New(st, Options{BatchSize: 10, FlushInterval: time.Hour, QueueSize: 10})
	w.Close()
	w.Record(context.Background(), Event{Actor: "system", Action: "late", Outcome: Success})
	w.Close() // idempotent
	if _, failed := w.Counts(); failed != 1 {
		t.Errorf("late event counted as %d lost, want 1", failed)
	}
}
