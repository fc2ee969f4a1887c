package frontend

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
)

func packed(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	return b
}

func parseQueries(t testing.TB) map[string][]byte {
	q := func(name string, qtype uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.Id = 0xabcd
		return m
	}
	long := strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 61) + "."
	edns := q("web.default.svc.cluster.local.", dns.TypeAAAA)
	edns.SetEdns0(1232, true)
	cookie := q("web.default.svc.cluster.local.", dns.TypeA)
	cookie.SetEdns0(4096, false)
	cookie.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}}
	flags := q("_http._tcp.Web.default.svc.cluster.local.", dns.TypeSRV)
	flags.CheckingDisabled, flags.AuthenticatedData, flags.Zero, flags.Authoritative = true, true, true, true
	ext := q("x.", dns.TypeA)
	ext.SetEdns0(512, false)
	ext.IsEdns0().SetExtendedRcode(0x50)
	ext.IsEdns0().SetVersion(3)
	compressed := packed(t, q("a.example.", dns.TypeA))
	return map[string][]byte{
		"plain":      packed(t, q("web.default.svc.cluster.local.", dns.TypeA)),
		"root":       packed(t, q(".", dns.TypeNS)),
		"wildcard":   packed(t, q("*.example.", dns.TypeA)),
		"long":       packed(t, q(long, dns.TypeA)),
		"edns":       packed(t, edns),
		"flags":      packed(t, flags),
		"ext rcode":  packed(t, ext),
		"cookie":     packed(t, cookie), // slow path: options
		"escaped":    packed(t, q(`a\.b\032c.example.`, dns.TypeA)),
		"dot":        packed(t, q(`a\.b.example.`, dns.TypeA)),
		"at":         packed(t, q(`@.example.`, dns.TypeA)),
		"high byte":  packed(t, q(`caf\233.example.`, dns.TypeA)),
		"trailing":   append(packed(t, q("a.example.", dns.TypeA)), 0, 0),
		"truncated":  packed(t, q("a.example.", dns.TypeA))[:20],
		"compressed": append(compressed[:12:12], 0xc0, 0x0c, 0, 1, 0, 1), // pointer loop
	}
}

// TestParseMatchesUnpack checks the hand decoder against dns.Msg.Unpack.
func TestParseMatchesUnpack(t *testing.T) {
	fast := map[string]bool{"plain": true, "root": true, "wildcard": true, "long": true, "edns": true, "flags": true, "ext rcode": true}
	for name, b := range parseQueries(t) {
		t.Run(name, func(t *testing.T) {
			var q query
			if got := q.parseFast(b); got != fast[name] {
				t.Fatalf("parseFast = %v, want %v", got, fast[name])
			}
			checkParse(t, b)
		})
	}
}

func checkParse(t *testing.T, b []byte) {
	var q query
	ok := q.parse(b)
	want := new(dns.Msg)
	werr := want.Unpack(b)
	if ok != (werr == nil) {
		t.Fatalf("parse ok %v, Unpack err %v", ok, werr)
	}
	if ok && !reflect.DeepEqual(&q.req, want) {
		t.Fatalf("parse:\n%#v\nUnpack:\n%#v", q.req, *want)
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range parseQueries(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < headerLen {
			return
		}
		checkParse(t, b)
	})
}

func TestQueryCtx(t *testing.T) {
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "v")

	var c queryCtx
	c.init(parent, time.Now().Add(time.Hour))
	if c.Err() != nil || c.Value(key{}) != "v" {
		t.Fatalf("fresh: err %v value %v", c.Err(), c.Value(key{}))
	}
	child, cancel := context.WithTimeout(&c, time.Hour)
	defer cancel()
	c.cancel()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("derived context not cancelled with the query")
	}
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("after cancel: %v", c.Err())
	}

	var d queryCtx
	d.init(parent, time.Now().Add(20*time.Millisecond))
	select {
	case <-d.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed at the deadline")
	}
	if !errors.Is(d.Err(), context.DeadlineExceeded) {
		t.Fatalf("after deadline: %v", d.Err())
	}

	// Err notices the deadline without Done; Done is then already closed.
	var e queryCtx
	e.init(parent, time.Now().Add(-time.Second))
	if !errors.Is(e.Err(), context.DeadlineExceeded) {
		t.Fatalf("past deadline: %v", e.Err())
	}
	select {
	case <-e.Done():
	default:
		t.Fatal("Err is set but Done is open")
	}
	e.cancel() // no effect once ended
	if !errors.Is(e.Err(), context.DeadlineExceeded) {
		t.Fatalf("cancel after deadline changed Err to %v", e.Err())
	}
}

// sink is a transport that keeps the last reply instead of sending it.
type sink struct {
	frame []byte
	done  chan struct{}
}

func (s *sink) send(_ *query, frame []byte) error {
	s.frame = append(s.frame[:0], frame[2:]...)
	return nil
}
func (s *sink) localAddr() net.Addr { return nil }
func (s *sink) finished(*query)     { s.done <- struct{}{} }

// webReply is the one-address reply the benchmark handlers answer with.
func webReply(tb testing.TB) *dns.Msg {
	reply := new(dns.Msg)
	reply.Response = true
	reply.Question = []dns.Question{{Name: "web.default.svc.cluster.local.", Qtype: dns.TypeA, Qclass: dns.ClassINET}}
	rr, err := dns.NewRR("web.default.svc.cluster.local. 5 IN A 10.0.0.1")
	if err != nil {
		tb.Fatal(err)
	}
	reply.Answer = []dns.RR{rr}
	return reply
}

// fixedAnswer writes one prebuilt reply to every query, as a cache hit does.
func fixedAnswer(tb testing.TB) resolver.Handler {
	reply := webReply(tb)
	return resolver.HandlerFunc{N: "fixed", F: func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		return dns.RcodeSuccess, w.WriteMsg(reply)
	}}
}

// wireAnswer answers every query inline with one prebuilt packed reply, as
// the cache answers a hit.
type wireAnswer struct{ b []byte }

func newWireAnswer(tb testing.TB) *wireAnswer {
	return &wireAnswer{b: packed(tb, webReply(tb))}
}

func (a *wireAnswer) Name() string { return "wire" }

func (a *wireAnswer) ServeDNS(context.Context, dns.ResponseWriter, *dns.Msg) (int, error) {
	return dns.RcodeServerFailure, errors.New("not inline")
}

func (a *wireAnswer) ServeInline(_ context.Context, w dns.ResponseWriter, _ *dns.Msg) (bool, int, error) {
	return true, dns.RcodeSuccess, w.(*query).WriteWire(a.b)
}

// writePath runs one query through parse, checks, handler, shaping and
// packing, without sockets.
type writePath struct {
	f    *Frontend
	s    *sink
	pkt  []byte
	peer netip.AddrPort
}

func newWritePath(tb testing.TB, edns bool, h resolver.Handler) *writePath {
	f, err := New(Config{Listen: []string{"127.0.0.1:0"}}, h, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	m := new(dns.Msg)
	m.SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
	m.Id = 0xabcd
	if edns {
		m.SetEdns0(1232, false)
	}
	return &writePath{f: f, s: &sink{done: make(chan struct{}, 1)}, pkt: packed(tb, m),
		peer: netip.MustParseAddrPort("10.1.2.3:5353")}
}

func (w *writePath) run(tb testing.TB) {
	q := w.f.receiveUDP(w.s, w.pkt, false, w.peer)
	if q == nil {
		tb.Fatal("not admitted")
	}
	w.f.process(q, w.pkt, context.Background())
	<-w.s.done
}

func TestWritePath(t *testing.T) {
	for _, c := range []struct {
		edns   bool
		h      resolver.Handler
		allocs float64
	}{
		{false, fixedAnswer(t), 2},
		{true, fixedAnswer(t), 2},
		// inline and as bytes, as a cache hit: the query is recycled
		{false, newWireAnswer(t), 1},
		{true, newWireAnswer(t), 1},
	} {
		edns := c.edns
		w := newWritePath(t, edns, c.h)
		w.run(t)
		m := new(dns.Msg)
		if err := m.Unpack(w.s.frame); err != nil {
			t.Fatal(err)
		}
		if m.Id != 0xabcd || len(m.Answer) != 1 || !m.RecursionAvailable || (m.IsEdns0() != nil) != edns {
			t.Fatalf("reply %v", m)
		}
		if !raceEnabled {
			// The query (one allocation, none when it is recycled) and its
			// name: within the budget of 2 issue 5 sets for cache hits. The
			// goroutine and pooled buffers are free in steady state.
			if n := testing.AllocsPerRun(200, func() { w.run(t) }); n > c.allocs {
				t.Errorf("%s edns=%v: %v allocations per query, want <= %v", c.h.Name(), edns, n, c.allocs)
			}
		}
	}
}

func BenchmarkWritePath(b *testing.B) {
	for _, h := range []resolver.Handler{fixedAnswer(b), newWireAnswer(b)} {
		b.Run(h.Name(), func(b *testing.B) {
			w := newWritePath(b, true, h)
			b.ReportAllocs()
			for b.Loop() {
				w.run(b)
			}
		})
	}
}

// TestQuerySize keeps the per-query allocation in the 896-byte size class:
// objects over 512 bytes that hold pointers carry an 8-byte malloc header,
// so 889 bytes would already cost a 1024-byte allocation on every query.
func TestQuerySize(t *testing.T) {
	if n := unsafe.Sizeof(query{}); n > 888 {
		t.Errorf("query is %d bytes, want <= 888", n)
	}
}
