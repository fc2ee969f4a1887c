package cache

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/clusterdns/clusterdns/resolver"
)

// clock is a settable time source, so tests age entries without sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeNext is the rest of the chain: it counts calls per question and answers
// with whatever reply returns: a message to write (or nil to write nothing),
// and the rcode and error to return.
type fakeNext struct {
	reply func(ctx context.Context, r *dns.Msg) (*dns.Msg, int, error)

	mu    sync.Mutex
	calls map[string]int // "name TYPE" as received; guarded by mu
}

func newFake(reply func(ctx context.Context, r *dns.Msg) (*dns.Msg, int, error)) *fakeNext {
	return &fakeNext{reply: reply, calls: map[string]int{}}
}

// answering returns a fake that always writes the same reply: rcode and
// records (zone-file strings) for answer and authority.
func answering(rcode int, answer, ns []string) *fakeNext {
	return newFake(func(_ context.Context, r *dns.Msg) (*dns.Msg, int, error) {
		m := build(r, rcode, answer, ns)
		return m, rcode, nil
	})
}

// failing returns a fake that writes nothing and returns rcode.
func failing(rcode int) *fakeNext {
	return newFake(func(context.Context, *dns.Msg) (*dns.Msg, int, error) { return nil, rcode, nil })
}

func (f *fakeNext) Name() string { return "fake" }

func (f *fakeNext) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	q := r.Question[0]
	f.mu.Lock()
	f.calls[q.Name+" "+dns.TypeToString[q.Qtype]]++
	f.mu.Unlock()
	m, rcode, err := f.reply(ctx, r)
	if m != nil {
		if werr := w.WriteMsg(m); werr != nil {
			return rcode, werr
		}
	}
	return rcode, err
}

// total is the number of queries the fake has seen.
func (f *fakeNext) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

// build returns an authoritative reply to r with the given records.
func build(r *dns.Msg, rcode int, answer, ns []string) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	m.Authoritative = true
	m.Answer = rrs(answer)
	m.Ns = rrs(ns)
	return m
}

func rrs(ss []string) []dns.RR {
	var out []dns.RR
	for _, s := range ss {
		rr, err := dns.NewRR(s)
		if err != nil {
			panic(s + ": " + err.Error())
		}
		out = append(out, rr)
	}
	return out
}

// env is a cache under test with its clock, registry and next stage.
type env struct {
	t     *testing.T
	c     *Cache
	h     resolver.Handler
	clock *clock
	reg   *prometheus.Registry
	next  *fakeNext
}

func newEnv(t *testing.T, cfg Config, next *fakeNext, skip ...string) *env {
	t.Helper()
	e := &env{t: t, clock: newClock(), reg: prometheus.NewRegistry(), next: next}
	c, err := New(cfg, Options{Metrics: NewMetrics(e.reg), Now: e.clock.Now, SkipZones: skip})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.c, e.h = c, c.Wrap(next)
	return e
}

// ask sends r through the cache and returns what the client got (nil when
// nothing was written), the rcode and the error.
func (e *env) ask(r *dns.Msg) (*dns.Msg, int, error) {
	e.t.Helper()
	w := resolver.NewRecorder(nil)
	rcode, err := e.h.ServeDNS(context.Background(), w, r)
	return w.Msg, rcode, err
}

// query asks for name and qtype and fails the test unless a reply was written.
func (e *env) query(name string, qtype uint16) *dns.Msg {
	e.t.Helper()
	m, rcode, err := e.ask(q(name, qtype))
	if m == nil {
		e.t.Fatalf("%s %s: nothing written (rcode %s, err %v)", name, dns.TypeToString[qtype], dns.RcodeToString[rcode], err)
	}
	return m
}

func q(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// metric returns the value of the counter or gauge name (without namespace
// and subsystem) whose labels include want; 0 if absent.
func (e *env) metric(name string, want ...string) float64 {
	e.t.Helper()
	families, err := e.reg.Gather()
	if err != nil {
		e.t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != "clusterdns_cache_"+name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, want) {
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == want[i] && l.GetValue() == want[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
