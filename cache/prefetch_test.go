package cache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func prefetchConfig() Config {
	cfg := Default()
	cfg.Prefetch = Prefetch{Amount: 3, Window: 10 * time.Second, Percentage: 50}
	return cfg
}

func TestPrefetch(t *testing.T) {
	const s = time.Second
	for _, tc := range []struct {
		name      string
		steps     []time.Duration // before each hit, advance the clock by this
		wantFetch int
	}{
		// 3 hits within 10 s once 50 s or less of the 100 s TTL is left.
		{"popular entry near expiry", []time.Duration{55 * s, s, s, 0, 0}, 1},
		{"unpopular entry near expiry", []time.Duration{60 * s, 0}, 0},
		{"popular entry far from expiry", []time.Duration{0, 0, 0, 0, 0}, 0},
		{"hits spread over several windows", []time.Duration{11 * s, 11 * s, 11 * s, 11 * s, 11 * s, 11 * s}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, prefetchConfig(), answering(dns.RcodeSuccess, []string{"p.example. 100 IN A 10.0.0.1"}, nil))
			if err := e.c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			e.query("p.example.", dns.TypeA)
			var elapsed time.Duration
			for _, d := range tc.steps {
				e.clock.Advance(d)
				elapsed += d
				e.query("p.example.", dns.TypeA)
			}
			if err := e.c.Stop(context.Background()); err != nil { // waits for the refresh
				t.Fatal(err)
			}
			if v := e.metric("prefetch_total"); int(v) != tc.wantFetch {
				t.Errorf("prefetch_total = %v, want %d", v, tc.wantFetch)
			}
			if n := e.next.total(); n != 1+tc.wantFetch {
				t.Fatalf("next called %d times, want %d", n, 1+tc.wantFetch)
			}
			// A refreshed entry answers with its full TTL again.
			wantTTL := uint32(100 - elapsed/s)
			if tc.wantFetch > 0 {
				wantTTL = 100
			}
			if got := e.query("p.example.", dns.TypeA).Answer[0].Header().Ttl; got != wantTTL {
				t.Errorf("TTL afterwards %d, want %d", got, wantTTL)
			}
			if v := e.metric("entries", "type", "positive"); v != 1 {
				t.Errorf("entries{positive} = %v, want 1", v)
			}
		})
	}
}

func TestFailedPrefetch(t *testing.T) {
	first := true
	e := newEnv(t, prefetchConfig(), newFake(func(_ context.Context, r *dns.Msg) (*dns.Msg, int, error) {
		if first {
			first = false
			return build(r, dns.RcodeSuccess, []string{"p.example. 100 IN A 10.0.0.1"}, nil), 0, nil
		}
		// against the contract, but a refresh must survive it: a written SERVFAIL
		return build(r, dns.RcodeServerFailure, nil, nil), dns.RcodeServerFailure, nil
	}))
	e.query("p.example.", dns.TypeA)
	e.clock.Advance(60 * time.Second)
	for run := range 2 {
		if err := e.c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		for range 4 {
			if got := e.query("p.example.", dns.TypeA); got.Rcode != dns.RcodeSuccess || got.Answer[0].Header().Ttl != 40 {
				t.Fatalf("run %d: hit %v, want the entry with 40 s left", run, got)
			}
		}
		if err := e.c.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// The entry was refreshed once; the failure did not replace it and did
	// not make it try again on every later hit.
	if v := e.metric("prefetch_total"); v != 1 {
		t.Errorf("prefetch_total = %v, want 1", v)
	}
	if got := e.query("p.example.", dns.TypeA); got.Rcode != dns.RcodeSuccess {
		t.Errorf("after the failed refresh: %v", got)
	}
}

func TestPrefetchBounded(t *testing.T) {
	release := make(chan struct{})
	fills := true
	next := newFake(func(ctx context.Context, r *dns.Msg) (*dns.Msg, int, error) {
		if fills {
			return build(r, dns.RcodeSuccess, []string{r.Question[0].Name + " 100 IN A 10.0.0.1"}, nil), 0, nil
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, dns.RcodeServerFailure, ctx.Err()
	})
	e := newEnv(t, prefetchConfig(), next)
	if err := e.c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	const names = maxPrefetches + 4
	for i := range names {
		e.query(fmt.Sprintf("n%d.example.", i), dns.TypeA)
	}
	fills = false // no refresh runs yet: Start was called, but nothing was prefetched
	e.clock.Advance(60 * time.Second)
	for range 5 {
		for i := range names {
			e.query(fmt.Sprintf("n%d.example.", i), dns.TypeA)
		}
	}
	if v := e.metric("prefetch_total"); v != maxPrefetches {
		t.Errorf("prefetch_total = %v, want %d (one per key, at most %d in flight)", v, maxPrefetches, maxPrefetches)
	}
	close(release)
	if err := e.c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Failed refreshes leave the entries answering until they expire.
	if got := e.query("n0.example.", dns.TypeA).Answer[0].Header().Ttl; got != 40 {
		t.Errorf("TTL after failed prefetch %d, want 40", got)
	}
}

func TestStopWaitsForPrefetch(t *testing.T) {
	finished := make(chan struct{}, 1)
	first := true
	e := newEnv(t, prefetchConfig(), newFake(func(ctx context.Context, r *dns.Msg) (*dns.Msg, int, error) {
		if first {
			first = false
			return build(r, dns.RcodeSuccess, []string{"s.example. 100 IN A 10.0.0.1"}, nil), 0, nil
		}
		<-ctx.Done() // only Stop ends a refresh before its timeout
		finished <- struct{}{}
		return nil, dns.RcodeServerFailure, ctx.Err()
	}))
	for range 2 { // Start and Stop are idempotent
		if err := e.c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	e.query("s.example.", dns.TypeA)
	e.clock.Advance(60 * time.Second)
	for range 4 {
		e.query("s.example.", dns.TypeA)
	}
	if v := e.metric("prefetch_total"); v != 1 {
		t.Fatalf("prefetch_total = %v, want 1", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-finished:
	default:
		t.Fatal("Stop returned before the prefetch ended")
	}
	if err := e.c.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestNoPrefetchWithoutStart(t *testing.T) {
	e := newEnv(t, prefetchConfig(), answering(dns.RcodeSuccess, []string{"p.example. 100 IN A 10.0.0.1"}, nil))
	e.query("p.example.", dns.TypeA)
	e.clock.Advance(60 * time.Second)
	for range 5 {
		e.query("p.example.", dns.TypeA)
	}
	if v := e.metric("prefetch_total"); v != 0 || e.next.total() != 1 {
		t.Errorf("prefetch_total %v, next calls %d: want no prefetch before Start", v, e.next.total())
	}
}
