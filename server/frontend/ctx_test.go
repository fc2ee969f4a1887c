package frontend

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// context.AfterFunc on a query context must use its AfterFunc method: the
// context package would otherwise watch it with a goroutine per call.
func TestQueryCtxAfterFunc(t *testing.T) {
	var c queryCtx
	c.init(context.Background(), time.Now().Add(time.Hour))
	before := runtime.NumGoroutine()
	fired := make(chan struct{})
	stops := make([]func() bool, 0, 50)
	for range 50 {
		stops = append(stops, context.AfterFunc(&c, func() {}))
	}
	last := context.AfterFunc(&c, func() { close(fired) })
	if n := runtime.NumGoroutine() - before; n > 2 {
		t.Fatalf("%d goroutines for 51 AfterFunc registrations", n)
	}
	for _, stop := range stops {
		if !stop() {
			t.Fatal("stop before the end returned false")
		}
	}
	c.cancel()
	select {
	case <-fired:
	case <-time.After(5 * time.Second):
		t.Fatal("the registered function did not run when the query ended")
	}
	if last() {
		t.Fatal("stop after the end returned true")
	}
}

func TestQueryCtxAfterFuncAtDeadline(t *testing.T) {
	var c queryCtx
	c.init(context.Background(), time.Now().Add(20*time.Millisecond))
	fired := make(chan struct{})
	context.AfterFunc(&c, func() { close(fired) })
	select {
	case <-fired:
	case <-time.After(5 * time.Second):
		t.Fatal("not run at the deadline")
	}
	if c.Err() != context.DeadlineExceeded {
		t.Fatalf("Err %v", c.Err())
	}
	// registered after the end: runs at once
	late := make(chan struct{})
	context.AfterFunc(&c, func() { close(late) })
	select {
	case <-late:
	case <-time.After(5 * time.Second):
		t.Fatal("a function registered after the end did not run")
	}
}
