package forward

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// testConfig returns a config for loopback stubs with short timeouts.
func testConfig(upstreams ...string) Config {
	cfg := Default()
	cfg.Upstreams = upstreams
	cfg.Policy = PolicySequential
	cfg.Timeout = 500 * time.Millisecond
	cfg.HealthCheck = 20 * time.Millisecond
	cfg.LoopCheck = 0 // probes would show in the stubs' counts; loop_test.go turns it on
	return cfg
}

// start builds and starts a Forward that is stopped when the test ends;
// setup runs before Start.
func start(t testing.TB, cfg Config, setup ...func(*Forward)) *Forward {
	t.Helper()
	f, err := New(cfg, Options{Metrics: NewMetrics(nil)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, fn := range setup {
		fn(f)
	}
	if err := f.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return f
}

// ask sends m through f the way the server does, with a per-query deadline,
// and returns what was written (nil if nothing) with the rcode and error.
func ask(t testing.TB, f *Forward, m *dns.Msg) (*dns.Msg, int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	rec := resolver.NewRecorder(nil)
	rcode, err := f.ServeDNS(ctx, rec, m)
	if rec.Msg != nil && !resolver.ClientWrote(rcode) {
		t.Errorf("rcode %s returned after a reply was written", dns.RcodeToString[rcode])
	}
	return rec.Msg, rcode, err
}

// mustAnswer asks and fails the test unless a reply was written.
func mustAnswer(t testing.TB, f *Forward, qname string, qtype uint16) *dns.Msg {
	t.Helper()
	got, rcode, err := ask(t, f, resolvertest.Query(qname, qtype))
	if err != nil || got == nil {
		t.Fatalf("%s: rcode %s, err %v, reply written %v", qname, dns.RcodeToString[rcode], err, got != nil)
	}
	return got
}

// aHandler answers every query with "qname 60 IN A ip".
func aHandler(ip string) dns.HandlerFunc {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		_ = w.WriteMsg(aReply(r, ip))
	}
}

func aReply(r *dns.Msg, ip string) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	if r.Question[0].Qtype == dns.TypeA {
		rr, _ := dns.NewRR(r.Question[0].Name + " 60 IN A " + ip)
		m.Answer = append(m.Answer, rr)
	}
	return m
}

// answeredBy is the A address in a reply, naming the stub that gave it.
func answeredBy(m *dns.Msg) string {
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return ""
}

// udpStub is a hand-made UDP upstream on loopback. It counts client queries
// and health probes (". NS") apart, and answers only while answer is set,
// with respond when given, else with an A record of ip.
type udpStub struct {
	addr      string
	ip        string
	pc        net.PacketConn
	answer    atomic.Bool
	queries   atomic.Int64
	probes    atomic.Int64
	sentinels atomic.Int64
	respond   func(pc net.PacketConn, from net.Addr, r *dns.Msg)
	done      chan struct{}
}

const sentinel = "sentinel.test."

func startUDPStub(t testing.TB, ip string, answer bool, respond func(pc net.PacketConn, from net.Addr, r *dns.Msg)) *udpStub {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &udpStub{addr: pc.LocalAddr().String(), ip: ip, pc: pc, respond: respond, done: make(chan struct{})}
	s.answer.Store(answer)
	t.Cleanup(func() {
		_ = pc.Close()
		<-s.done
	})
	go s.serve()
	return s
}

func (s *udpStub) serve() {
	defer close(s.done)
	buf := make([]byte, 65535)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		r := new(dns.Msg)
		if r.Unpack(buf[:n]) != nil || len(r.Question) != 1 {
			continue
		}
		switch r.Question[0].Name {
		case sentinel:
			s.sentinels.Add(1)
			continue
		case ".":
			s.probes.Add(1)
		default:
			s.queries.Add(1)
		}
		if !s.answer.Load() {
			continue
		}
		if s.respond != nil {
			s.respond(s.pc, from, r)
			continue
		}
		b, _ := aReply(r, s.ip).Pack()
		_, _ = s.pc.WriteTo(b, from)
	}
}

// sync sends a sentinel query straight to the stub and waits until the stub
// has read it. The stub reads its socket in order, so afterwards every
// packet sent to it earlier has been counted. It returns the client-query
// count.
func (s *udpStub) sync(t testing.TB) int64 {
	t.Helper()
	before := s.sentinels.Load()
	c, err := net.Dial("udp", s.addr)
	if err != nil {
		t.Fatalf("dial stub: %v", err)
	}
	defer c.Close()
	b, _ := resolvertest.Query(sentinel, dns.TypeA).Pack()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write sentinel: %v", err)
	}
	waitFor(t, "stub to read the sentinel", func() bool { return s.sentinels.Load() > before })
	return s.queries.Load()
}

// recorder collects what a stub saw, safe for the stub's goroutines.
type recorder struct {
	mu   sync.Mutex
	msgs []*dns.Msg
	from []net.Addr
}

func (r *recorder) add(m *dns.Msg, from net.Addr) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m.Copy())
	r.from = append(r.from, from)
	r.mu.Unlock()
}

func (r *recorder) snapshot() ([]*dns.Msg, []net.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*dns.Msg(nil), r.msgs...), append([]net.Addr(nil), r.from...)
}

// upstreamOf returns f's upstream for addr.
func upstreamOf(t testing.TB, f *Forward, addr string) *upstream {
	t.Helper()
	for _, u := range f.all {
		if u.label == addr {
			return u
		}
	}
	t.Fatalf("no upstream %s", addr)
	return nil
}

// waitFor polls cond every 5ms for at most 5s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// value reads a counter or gauge.
func value(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatalf("read metric: %v", err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("metric is neither counter nor gauge")
	return 0
}
