package cache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
)

// inliner is what the front end asks of the chain's first stage.
type inliner interface {
	ServeInline(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (bool, int, error)
}

// TestServeInline: only fresh hits (cached failures included) are served
// inline, and serving one never calls the next stage; misses, stale entries,
// skipped zones and uncacheable queries are declined without side effects
// on the counts, so ServeDNS on a worker handles and counts them once.
func TestServeInline(t *testing.T) {
	cfg := Default()
	cfg.ServeStale = time.Hour
	next := newFake(func(_ context.Context, r *dns.Msg) (*dns.Msg, int, error) {
		switch r.Question[0].Name {
		case "fail.example.":
			return nil, dns.RcodeServerFailure, nil
		}
		m := build(r, dns.RcodeSuccess, []string{r.Question[0].Name + " 60 IN A 10.0.0.1"}, nil)
		return m, m.Rcode, nil
	})
	e := newEnv(t, cfg, next, "cluster.local.")
	ih, ok := e.h.(inliner)
	if !ok {
		t.Fatalf("%T does not serve inline", e.h)
	}
	inline := func(r *dns.Msg) (bool, int, *dns.Msg) {
		w := resolver.NewRecorder(nil)
		served, rcode, err := ih.ServeInline(context.Background(), w, r)
		if err != nil && !(rcode == dns.RcodeServerFailure && errors.Is(err, ErrCachedFailure)) {
			t.Fatalf("%s: %v", r.Question[0].Name, err)
		}
		return served, rcode, w.Msg
	}

	if served, _, _ := inline(q("web.example.", dns.TypeA)); served {
		t.Fatal("a miss was served inline")
	}
	e.query("web.example.", dns.TypeA)
	e.ask(q("fail.example.", dns.TypeA))
	if got := e.metric("misses_total"); got != 2 {
		t.Fatalf("misses_total %v, want 2 (the inline miss is not counted)", got)
	}
	calls := next.total()

	served, rcode, m := inline(q("WEB.example.", dns.TypeA))
	if !served || rcode != dns.RcodeSuccess || m == nil {
		t.Fatalf("fresh hit: served %v rcode %d reply %v", served, rcode, m)
	}
	e.clock.Advance(time.Second)
	served, rcode, m = inline(q("fail.example.", dns.TypeA))
	if !served || rcode != dns.RcodeServerFailure || m != nil {
		t.Fatalf("cached SERVFAIL: served %v rcode %d reply %v", served, rcode, m)
	}
	if next.total() != calls {
		t.Fatal("serving inline called the next stage")
	}

	e.clock.Advance(2 * time.Minute) // web.example. is stale now
	for _, r := range []*dns.Msg{
		q("web.example.", dns.TypeA),
		q("svc.cluster.local.", dns.TypeA),
		q("example.", dns.TypeAXFR),
	} {
		if served, _, _ := inline(r); served {
			t.Errorf("%s %s served inline", r.Question[0].Name, dns.TypeToString[r.Question[0].Qtype])
		}
	}
	if next.total() != calls || e.metric("misses_total") != 2 || e.metric("served_stale_total") != 0 {
		t.Errorf("declining changed state: calls %d->%d misses %v stale %v", calls, next.total(), e.metric("misses_total"), e.metric("served_stale_total"))
	}
}
