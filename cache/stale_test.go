package cache

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

var errUpstream = errors.New("upstream timed out")

// flaky answers while up and otherwise fails the way fail says.
func flaky(up *atomic.Bool, fail func(ctx context.Context) (int, error)) *fakeNext {
	return newFake(func(ctx context.Context, r *dns.Msg) (*dns.Msg, int, error) {
		if up.Load() {
			return build(r, dns.RcodeSuccess, []string{"s.example. 10 IN A 10.0.0.1"}, nil), dns.RcodeSuccess, nil
		}
		rcode, err := fail(ctx)
		return nil, rcode, err
	})
}

func TestServeStale(t *testing.T) {
	failures := []struct {
		name string
		fail func(ctx context.Context) (int, error)
	}{
		{"SERVFAIL", func(context.Context) (int, error) { return dns.RcodeServerFailure, nil }},
		{"REFUSED", func(context.Context) (int, error) { return dns.RcodeRefused, nil }},
		{"error", func(context.Context) (int, error) { return dns.RcodeServerFailure, errUpstream }},
		{"context ends", func(ctx context.Context) (int, error) {
			<-ctx.Done()
			return dns.RcodeServerFailure, ctx.Err()
		}},
	}
	for _, f := range failures {
		for _, stale := range []time.Duration{time.Hour, 0} {
			t.Run(f.name+"/serveStale="+stale.String(), func(t *testing.T) {
				cfg := Default()
				cfg.ServeStale = stale
				var up atomic.Bool
				up.Store(true)
				e := newEnv(t, cfg, flaky(&up, f.fail))
				e.query("s.example.", dns.TypeA)
				e.clock.Advance(20 * time.Second) // expired 10 s ago
				up.Store(false)

				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				w := resolver.NewRecorder(nil)
				rcode, err := e.h.ServeDNS(ctx, w, q("s.example.", dns.TypeA))
				if n := e.next.total(); n != 2 {
					t.Fatalf("next called %d times, want 2 (an expired entry is refreshed first)", n)
				}
				if stale == 0 {
					if w.Msg != nil || resolver.ClientWrote(rcode) {
						t.Fatalf("without serveStale: wrote %v, rcode %s; want nothing and the failure", w.Msg, dns.RcodeToString[rcode])
					}
					return
				}
				if err != nil || rcode != dns.RcodeSuccess {
					t.Fatalf("stale answer: rcode %s err %v", dns.RcodeToString[rcode], err)
				}
				resolvertest.Case{Qname: "s.example.", Qtype: dns.TypeA, Answer: []string{"s.example. 30 IN A 10.0.0.1"}}.Check(t, w.Msg)
				if v := e.metric("served_stale_total"); v != 1 {
					t.Errorf("served_stale_total = %v, want 1", v)
				}
				// The failure did not displace the stale entry, and once the
				// chain is back the answer is fresh again.
				up.Store(true)
				resolvertest.Case{Qname: "s.example.", Qtype: dns.TypeA, Answer: []string{"s.example. 10 IN A 10.0.0.1"}}.Check(t, e.query("s.example.", dns.TypeA))
				if n := e.next.total(); n != 3 {
					t.Errorf("next called %d times, want 3", n)
				}
			})
		}
	}
}

func TestServeStaleWindow(t *testing.T) {
	cfg := Default()
	cfg.ServeStale = time.Minute
	var up atomic.Bool
	up.Store(true)
	e := newEnv(t, cfg, flaky(&up, func(context.Context) (int, error) { return dns.RcodeServerFailure, errUpstream }))
	e.query("s.example.", dns.TypeA)
	e.clock.Advance(10*time.Second + time.Minute) // past expiry by exactly serveStale
	up.Store(false)
	m, rcode, _ := e.ask(q("s.example.", dns.TypeA))
	if m != nil || rcode != dns.RcodeServerFailure {
		t.Fatalf("past the stale window: wrote %v, rcode %s; want nothing and SERVFAIL", m, dns.RcodeToString[rcode])
	}
	if v := e.metric("served_stale_total"); v != 0 {
		t.Errorf("served_stale_total = %v, want 0", v)
	}
}
