package httpx

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// waitFor polls until cond holds (a queued goroutine shows in the gauge
// only once it is blocked).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestAdmissionRunsAtMostNAndQueuesInArrivalOrder(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := NewAdmission(2, time.Hour, "test", reg)
	for i := 0; i < 2; i++ {
		if held, err := a.Enter(context.Background()); !held || err != nil {
			t.Fatalf("Enter %d with a free slot = %v, %v; want a slot", i, held, err)
		}
	}
	// Five more arrive one after the other while both slots are taken.
	order := make(chan int, 5)
	for i := 0; i < 5; i++ {
		go func() {
			held, err := a.Enter(context.Background())
			if !held || err != nil {
				t.Errorf("waiter %d: Enter = %v, %v; want a slot", i, held, err)
			}
			order <- i
		}()
		waitFor(t, "waiter to queue", func() bool { return testutil.ToFloat64(a.waiting) == float64(i+1) })
	}
	select {
	case i := <-order:
		t.Fatalf("waiter %d ran while both slots were taken", i)
	case <-time.After(50 * time.Millisecond):
	}
	// Each slot given back admits exactly the longest-waiting request.
	for want := 0; want < 5; want++ {
		a.Leave()
		select {
		case got := <-order:
			if got != want {
				t.Fatalf("slot %d went to waiter %d; want %d (arrival order)", want, got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no waiter admitted after Leave %d", want)
		}
	}
	if n := testutil.ToFloat64(a.waiting); n != 0 {
		t.Fatalf("waiting gauge = %v after every waiter ran; want 0", n)
	}
	if n := testutil.CollectAndCount(reg, "smartgate_test_wait_seconds"); n != 1 {
		t.Fatalf("wait histogram series = %d; want 1", n)
	}
}

func TestAdmissionCallerGoneWhileWaiting(t *testing.T) {
	a := NewAdmission(1, time.Hour, "test", nil)
	if held, _ := a.Enter(context.Background()); !held {
		t.Fatal("first Enter got no slot")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		held, err := a.Enter(ctx)
		if held {
			t.Error("a cancelled waiter was given a slot")
		}
		done <- err
	}()
	waitFor(t, "waiter to queue", func() bool { return testutil.ToFloat64(a.waiting) == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Enter after cancel = %v; want context.Canceled", err)
	}
	// The cancelled waiter took nothing: one Leave frees the only slot.
	a.Leave()
	if held, err := a.Enter(context.Background()); !held || err != nil {
		t.Fatalf("Enter after the holder left = %v, %v; want the slot", held, err)
	}
}

func TestAdmissionLongestWaitRunsWithoutSlot(t *testing.T) {
	a := NewAdmission(1, 20*time.Millisecond, "test", nil)
	if held, _ := a.Enter(context.Background()); !held {
		t.Fatal("first Enter got no slot")
	}
	held, err := a.Enter(context.Background())
	if held || err != nil {
		t.Fatalf("Enter past the longest wait = %v, %v; want to run without a slot", held, err)
	}
	if n := testutil.ToFloat64(a.overflow); n != 1 {
		t.Fatalf("overflow counter = %v; want 1", n)
	}
	// The slot is still the first holder's: a third caller waits again.
	if held, _ := a.Enter(context.Background()); held {
		t.Fatal("a slot appeared that nobody gave back")
	}
}
