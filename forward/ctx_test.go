package forward

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// deadlineCtx is a context that declares it ends only at its deadline, as
// the front end's does, and counts calls to Done.
type deadlineCtx struct {
	context.Context
	dones atomic.Int32
}

func (c *deadlineCtx) DeadlineOnly() bool { return true }

func (c *deadlineCtx) Done() <-chan struct{} {
	c.dones.Add(1)
	return c.Context.Done()
}

// serveAsync runs ServeDNS in a goroutine and returns its outcome on a channel.
func serveAsync(ctx context.Context, f *Forward) <-chan error {
	out := make(chan error, 1)
	go func() {
		rcode, err := f.ServeDNS(ctx, resolver.NewRecorder(nil), resolvertest.Query("silent.example.org.", dns.TypeA))
		if rcode != dns.RcodeServerFailure {
			err = errors.Join(err, errors.New("rcode "+dns.RcodeToString[rcode]+", want SERVFAIL"))
		}
		out <- err
	}()
	return out
}

// TestCancelWakesBlockedRead: a query cancelled while waiting for a silent
// upstream returns at once, not after the attempt timeout.
func TestCancelWakesBlockedRead(t *testing.T) {
	stub := startUDPStub(t, "", false, nil)
	cfg := testConfig(stub.addr)
	cfg.Timeout = time.Minute
	f := start(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := serveAsync(ctx, f)
	for i := 0; stub.queries.Load() == 0; i++ {
		if i == 500 {
			t.Fatal("the upstream never saw the query")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("no error for a cancelled query")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("ServeDNS still blocked 20s after its context was cancelled")
	}
}

// TestDeadlineOnlyContextNeedsNoWatcher: for a context that ends only at its
// deadline the socket deadline is the whole story: Done is never asked for
// (no goroutine or timer per query) and the query still ends at the deadline.
func TestDeadlineOnlyContextNeedsNoWatcher(t *testing.T) {
	stub := startUDPStub(t, "192.0.2.1", false, nil)
	cfg := testConfig(stub.addr)
	cfg.Timeout = time.Minute
	cfg.MaxFails = 100 // the timeout must not mark the stub down for the answer below
	f := start(t, cfg)
	inner, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	ctx := &deadlineCtx{Context: inner}
	select {
	case err := <-serveAsync(ctx, f):
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("err %v, want a deadline error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("ServeDNS did not end at its context's deadline")
	}
	if n := ctx.dones.Load(); n != 0 {
		t.Errorf("Done called %d times for a deadline-only context", n)
	}

	stub.answer.Store(true)
	inner, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ctx = &deadlineCtx{Context: inner}
	rec := resolver.NewRecorder(nil)
	if _, err := f.ServeDNS(ctx, rec, resolvertest.Query("after.example.org.", dns.TypeA)); err != nil || rec.Msg == nil {
		t.Fatalf("answer after the timeout: %v (socket left poisoned?)", err)
	}
	if n := ctx.dones.Load(); n != 0 {
		t.Errorf("Done called %d times for a deadline-only context", n)
	}
}
