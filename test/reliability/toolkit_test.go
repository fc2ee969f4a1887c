package reliability

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"k8s.io/client-go/rest"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.99) != 0 {
		t.Fatal("empty histogram has a p99")
	}
	for i := 1; i <= 1000; i++ {
		h.Add(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.Quantile(c.q)
		if got < c.want || float64(got) > float64(c.want)*1.05 {
			t.Errorf("q%.2f = %v, want %v to +5%%", c.q, got, c.want)
		}
	}
	var o Histogram
	o.Add(3 * time.Second)
	h.Merge(&o)
	if h.Count() != 1001 || h.Max() != 3*time.Second || h.Quantile(1) != 3*time.Second {
		t.Errorf("after merge: count %d max %v q1 %v", h.Count(), h.Max(), h.Quantile(1))
	}
}

func TestParseMetrics(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(`# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 42
clusterdns_forward_mismatched_replies_total{upstream="127.0.0.1:53"} 7
clusterdns_forward_mismatched_replies_total{upstream="127.0.0.1:54"} 3
clusterdns_cache_entries{type="x,y"} 1e+03 1700000000000
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		match []string
		want  float64
	}{
		{"go_goroutines", nil, 42},
		{"clusterdns_forward_mismatched_replies_total", nil, 10},
		{"clusterdns_forward_mismatched_replies_total", []string{`upstream="127.0.0.1:54"`}, 3},
		{"clusterdns_cache_entries", nil, 1000},
	} {
		if got := m.Value(c.name, c.match...); got != c.want {
			t.Errorf("%s %v = %v, want %v", c.name, c.match, got, c.want)
		}
	}
	if _, ok := m.Sum("absent"); ok {
		t.Error("absent metric found")
	}
	if _, err := ParseMetrics(strings.NewReader("bad{line 1\n")); err == nil {
		t.Error("malformed line accepted")
	}
}

// stubHandler answers like a StubAnswer stub, over UDP and TCP.
type stubHandler struct{}

func (stubHandler) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: StubIP(q.Name).AsSlice()}}
	_ = w.WriteMsg(m)
}

func TestLoadCountsAnswersWrongAndLost(t *testing.T) {
	good := startStub(t, StubAnswer, 0)
	dead := startStub(t, StubDead, 0)
	tcp := resolvertest.StartServer(t, stubHandler{})
	q := upstreamQuestion("toolkit")
	wrongIP := expectA(func(string) ([]netip.Addr, bool) { return []netip.Addr{PoisonIP}, true })
	for _, c := range []struct {
		name                      string
		l                         Load
		answered, wrong, timeouts int
	}{
		{"right answers", Load{Addr: good.Addr, Rate: 2000, Check: stubAnswers}, 200, 0, 0},
		{"wrong answers", Load{Addr: good.Addr, Check: wrongIP}, 200, 200, 0},
		{"no answers", Load{Addr: dead.Addr, Window: 64, Timeout: 200 * time.Millisecond}, 0, 0, 200},
		{"tcp", Load{Addr: netip.MustParseAddrPort(tcp.Addr), TCP: true, Check: expectA(func(n string) ([]netip.Addr, bool) {
			return []netip.Addr{StubIP(n)}, true
		})}, 200, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.l.Count, c.l.Duration, c.l.Query = 200, 10*time.Second, q
			r, err := c.l.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if r.Sent != 200 || r.Answered != c.answered || r.Wrong != c.wrong || r.Timeouts != c.timeouts || r.Errors != 0 {
				t.Errorf("got %s, want 200 sent, %d answered, %d wrong, %d timeouts", &r, c.answered, c.wrong, c.timeouts)
			}
			if c.answered > 0 && (r.P99() <= 0 || r.Latency.Count() != uint64(c.answered)) {
				t.Errorf("latency: %d recorded, p99 %v", r.Latency.Count(), r.P99())
			}
		})
	}
	if _, err := (Load{Addr: netip.MustParseAddrPort("192.0.2.1:53"), Count: 1, Duration: time.Second, Query: q}).Run(t.Context()); err == nil {
		t.Error("a load toward a non-loopback address ran")
	}
}

func TestLoadRateAndStop(t *testing.T) {
	good := startStub(t, StubAnswer, 0)
	start := time.Now()
	r, err := Load{Addr: good.Addr, Rate: 100, Count: 1000, Duration: 500 * time.Millisecond, Query: upstreamQuestion("rate")}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent < 30 || r.Sent > 51 || time.Since(start) > 5*time.Second {
		t.Errorf("100/s for 500 ms sent %d in %v", r.Sent, time.Since(start))
	}
	stop := background(t, Load{Addr: good.Addr, Rate: 100, Count: 1 << 20, Duration: time.Hour, Query: upstreamQuestion("stop")})
	time.Sleep(100 * time.Millisecond)
	if r := stop(); r.Sent == 0 || r.Sent > 50 || r.Answered != r.Sent {
		t.Errorf("stopped load: %s", &r)
	}
}

// rawExchange sends a query for name to addr and returns every packet that
// comes back within wait.
func rawExchange(t *testing.T, addr netip.AddrPort, name string, wait time.Duration) (id uint16, got [][]byte) {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	b, _ := m.Pack()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for {
		_ = c.SetReadDeadline(deadline)
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			return m.Id, got
		}
		got = append(got, buf[:n])
	}
}

func TestStubModes(t *testing.T) {
	const name = "www.example.test."
	check := func(t *testing.T, id uint16, b []byte, wantID uint16, wantName string, want netip.Addr) {
		t.Helper()
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			t.Fatalf("unpack: %v", err)
		}
		if m.Id != wantID || len(m.Question) != 1 || m.Question[0].Name != wantName {
			t.Errorf("reply id %d (query %d) question %v, want id %d for %s", m.Id, id, m.Question, wantID, wantName)
		}
		if err := sameA(m, []netip.Addr{want}); err != nil {
			t.Error(err)
		}
	}
	t.Run("answer", func(t *testing.T) {
		s := startStub(t, StubAnswer, 0)
		id, got := rawExchange(t, s.Addr, name, 200*time.Millisecond)
		if len(got) != 1 {
			t.Fatalf("%d packets", len(got))
		}
		check(t, id, got[0], id, name, StubIP(name))
		r, err := exchange(s.Addr, "x."+NXZone, dns.TypeA)
		if err != nil || r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 {
			t.Errorf("NXZone: %v %v", r, err)
		}
	})
	t.Run("wrong-id", func(t *testing.T) {
		s := startStub(t, StubWrongID, 0)
		id, got := rawExchange(t, s.Addr, name, 200*time.Millisecond)
		if len(got) != 2 {
			t.Fatalf("%d packets", len(got))
		}
		check(t, id, got[0], id+1, name, PoisonIP)
		check(t, id, got[1], id, name, StubIP(name))
	})
	t.Run("wrong-question", func(t *testing.T) {
		s := startStub(t, StubWrongQuestion, 0)
		id, got := rawExchange(t, s.Addr, name, 200*time.Millisecond)
		if len(got) != 2 {
			t.Fatalf("%d packets", len(got))
		}
		m := new(dns.Msg)
		if err := m.Unpack(got[0]); err != nil || m.Id != id || m.Question[0].Name != "poison."+name {
			t.Errorf("spoof: %v %v", m, err)
		}
		check(t, id, got[1], id, name, StubIP(name))
	})
	t.Run("garbage", func(t *testing.T) {
		s := startStub(t, StubGarbage, 0)
		for range 10 {
			id, got := rawExchange(t, s.Addr, name, 100*time.Millisecond)
			if len(got) != 1 {
				t.Fatalf("%d packets", len(got))
			}
			m := new(dns.Msg)
			if m.Unpack(got[0]) == nil && m.Id == id && sameA(m, []netip.Addr{StubIP(name)}) == nil {
				t.Fatal("garbage mode sent a right answer")
			}
		}
	})
	t.Run("slow-and-dead", func(t *testing.T) {
		s := startStub(t, StubSlow, 300*time.Millisecond)
		start := time.Now()
		if _, got := rawExchange(t, s.Addr, name, 150*time.Millisecond); len(got) != 0 {
			t.Fatal("slow stub answered at once")
		}
		if _, got := rawExchange(t, s.Addr, name, time.Second); len(got) != 1 || time.Since(start) < 300*time.Millisecond {
			t.Fatalf("slow stub: %d packets", len(got))
		}
		s.SetMode(StubDead, 0)
		if _, got := rawExchange(t, s.Addr, name, 200*time.Millisecond); len(got) != 0 {
			t.Fatal("dead stub answered")
		}
		if _, err := exchange(s.Addr, ".", dns.TypeNS); err == nil {
			t.Error("dead stub answered a probe")
		}
		if s.Queries.Load() != 4 || s.Probes.Load() != 1 || s.LoadQueries() != 3 {
			t.Errorf("queries %d probes %d load %d", s.Queries.Load(), s.Probes.Load(), s.LoadQueries())
		}
	})
}

func TestFloods(t *testing.T) {
	s := startStub(t, StubAnswer, 0)
	m := new(dns.Msg)
	m.SetQuestion("flood.example.test.", dns.TypeA)
	b, _ := m.Pack()
	r, err := Flood{Addr: s.Addr, Senders: 2, Count: 2000, Duration: 5 * time.Second, Packets: [][]byte{b}, Linger: 200 * time.Millisecond}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 2000 || r.Replies == 0 || r.Replies != r.Rcodes[dns.RcodeSuccess] {
		t.Errorf("flood: %+v", r)
	}

	// A server that takes a connection, keeps one at most and closes the
	// others at once, like a capped front end.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		var kept net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				if kept != nil {
					kept.Close()
				}
				return
			}
			if accepted.Add(1) == 1 {
				kept = c
				continue
			}
			c.Close()
		}
	}()
	cr, err := ConnFlood{Addr: netip.MustParseAddrPort(ln.Addr().String()), Conns: 20, Workers: 4, Slow: true,
		Duration: 400 * time.Millisecond, Redial: 50 * time.Millisecond}.Run(t.Context())
	ln.Close()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if cr.Dials <= 20 || cr.Closed < 19 || cr.PeakOpen < 2 || cr.DialErrors != 0 {
		t.Errorf("conn flood: %+v", cr)
	}
}

func TestAPIProxyFaults(t *testing.T) {
	var got atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		fmt.Fprint(w, `{"kind":"ServiceList","apiVersion":"v1","metadata":{},"items":[]}`)
	}))
	defer target.Close()
	p, err := StartAPIProxy(&rest.Config{Host: target.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	get := func(path string) int {
		t.Helper()
		resp, err := http.Get(p.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const list, watch = "/api/v1/namespaces/a/services", "/api/v1/services?watch=true&resourceVersion=5"
	if get(list) != 200 || get(watch) != 200 {
		t.Fatal("pass-through failed")
	}
	p.ExpireWatches()
	if c := get(watch); c != http.StatusGone {
		t.Errorf("first watch after ExpireWatches: %d, want 410", c)
	}
	if get(list) != 200 || get(watch) != 200 {
		t.Error("second watch after ExpireWatches did not pass")
	}
	p.SetFault(Fault{Status: 500})
	if c := get(list); c != 500 {
		t.Errorf("with a 500 fault: %d", c)
	}
	p.SetFault(Fault{Delay: 200 * time.Millisecond})
	start := time.Now()
	if c := get(list); c != 200 || time.Since(start) < 200*time.Millisecond {
		t.Errorf("with a delay fault: %d after %v", c, time.Since(start))
	}
	st := p.Stats()
	if st.Lists["/api/v1/services"] != 3 || st.Watches["/api/v1/services"] != 2 || st.Expired != 1 || st.Faulted != 2 || got.Load() != 5 {
		t.Errorf("stats %+v, target got %d requests", st, got.Load())
	}
}

func TestTable(t *testing.T) {
	rows := []Row{
		{Scenario: "a|b", Offered: "10 q", Sent: 10, Answered: 9, ServFail: 1, P99: 1500 * time.Microsecond, PeakRSS: 3 << 20, Goroutines: 7, Note: "n"},
		{Scenario: "no load", Offered: "-"},
	}
	txt := FormatTable(rows)
	for _, want := range []string{"Scenario", "9 (90.0%)", "1 (10.0%)", "1.5 ms", "3.0 MiB", "7"} {
		if !strings.Contains(txt, want) {
			t.Errorf("table lacks %q:\n%s", want, txt)
		}
	}
	md := Markdown(rows)
	if !strings.Contains(md, `a\|b`) || strings.Count(md, "\n") != 2 {
		t.Errorf("markdown:\n%s", md)
	}
}
