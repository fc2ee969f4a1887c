package frontend_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/server/frontend"
)

// server is a started front end on loopback and its metrics registry.
type server struct {
	f    *frontend.Frontend
	addr string // "127.0.0.1:port"
	reg  *prometheus.Registry
}

func start(t *testing.T, cfg frontend.Config, h resolver.Handler) *server {
	t.Helper()
	if cfg.Listen == nil {
		cfg.Listen = []string{"127.0.0.1:0"}
	}
	if cfg.UDPSockets == 0 {
		cfg.UDPSockets = 2
	}
	reg := prometheus.NewRegistry()
	f, err := frontend.New(cfg, h, frontend.Options{Metrics: frontend.NewMetrics(reg)})
	if err != nil {
		t.Fatalf("New: %v", err)
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
	return &server{f: f, addr: f.Addrs()[0].String(), reg: reg}
}

// metric returns the value of clusterdns_<name> with the given label pairs
// ("proto", "udp"), 0 when absent.
func (s *server) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "clusterdns_"+name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// waitMetric polls until clusterdns_<name> reaches want, for at most 5 s.
func (s *server) waitMetric(t testing.TB, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := s.metric(t, name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func rrs(t testing.TB, zone ...string) []dns.RR {
	t.Helper()
	out := make([]dns.RR, len(zone))
	for i, s := range zone {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("record %q: %v", s, err)
		}
		out[i] = rr
	}
	return out
}

// zoneHandler answers from a fixed table of records by lower-case name and
// counts its calls.
type zoneHandler struct {
	records map[string][]dns.RR
	calls   atomic.Int64
}

func newZone(t testing.TB, zone ...string) *zoneHandler {
	z := &zoneHandler{records: map[string][]dns.RR{}}
	for _, rr := range rrs(t, zone...) {
		k := strings.ToLower(rr.Header().Name)
		z.records[k] = append(z.records[k], rr)
	}
	return z
}

func (z *zoneHandler) Name() string { return "zone" }

func (z *zoneHandler) ServeDNS(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	z.calls.Add(1)
	req := resolver.NewRequest(w, r)
	m := new(dns.Msg).SetReply(r)
	m.Authoritative = true
	all, ok := z.records[req.Name()]
	if !ok {
		m.Rcode = dns.RcodeNameError
	}
	for _, rr := range all {
		if rr.Header().Rrtype == req.QType() {
			m.Answer = append(m.Answer, rr)
		}
	}
	return m.Rcode, w.WriteMsg(m)
}

// rawExchange sends b over a fresh socket and returns the reply bytes.
func rawExchange(t testing.TB, network, addr string, b []byte) []byte {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if network == "tcp" {
		b = append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
	if network == "tcp" {
		var l [2]byte
		if _, err := readFull(c, l[:]); err != nil {
			t.Fatalf("read length: %v", err)
		}
		buf := make([]byte, int(l[0])<<8|int(l[1]))
		if _, err := readFull(c, buf); err != nil {
			t.Fatalf("read: %v", err)
		}
		return buf
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return buf[:n]
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := c.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func exchange(t testing.TB, network, addr string, m *dns.Msg) (*dns.Msg, int) {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	raw := rawExchange(t, network, addr, b)
	r := new(dns.Msg)
	if err := r.Unpack(raw); err != nil {
		t.Fatalf("unpack reply: %v", err)
	}
	if r.Id != m.Id {
		t.Fatalf("reply id %d, want %d", r.Id, m.Id)
	}
	return r, len(raw)
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func withEDNS(m *dns.Msg, size uint16, do bool) *dns.Msg {
	m.SetEdns0(size, do)
	return m
}

// checkHeader compares the flags that matter for every reply from us.
func checkHeader(t testing.TB, got *dns.Msg, rcode int, question bool, opt bool) {
	t.Helper()
	if got.Rcode != rcode {
		t.Errorf("rcode %s, want %s", dns.RcodeToString[got.Rcode], dns.RcodeToString[rcode])
	}
	if !got.Response || !got.RecursionAvailable {
		t.Errorf("QR %v RA %v, want both set", got.Response, got.RecursionAvailable)
	}
	if question != (len(got.Question) == 1) || len(got.Question) > 1 {
		t.Errorf("question section %v, want echoed=%v", got.Question, question)
	}
	if opt != (got.IsEdns0() != nil) {
		t.Errorf("OPT present %v, want %v", got.IsEdns0() != nil, opt)
	}
}
