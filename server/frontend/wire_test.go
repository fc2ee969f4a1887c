package frontend_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
	"github.com/clusterdns/clusterdns/server/frontend"
)

func pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	return b
}

// firstReplyID sends each packet in order on one UDP socket, then returns
// the ID of the first reply. The server answers bad packets (if at all) in
// its reader before reading the next one, so a reply to any of them would
// come first.
func firstReplyID(t *testing.T, addr string, pkts ...[]byte) uint16 {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	for _, p := range pkts {
		if _, err := c.Write(p); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil || n < 2 {
		t.Fatalf("read: %d bytes, %v", n, err)
	}
	return binary.BigEndian.Uint16(buf)
}

func TestNoReplyToShortOrResponse(t *testing.T) {
	z := newZone(t, "a.example. 60 IN A 10.0.0.1")
	s := start(t, frontend.Config{UDPSockets: 1}, z)
	good := query("a.example.", dns.TypeA)
	good.Id = 4242
	resp := query("a.example.", dns.TypeA)
	resp.Id = 1111
	resp.Response = true
	for _, c := range []struct {
		name string
		pkt  []byte
	}{
		{"short", []byte{0x11, 0x11, 1, 0, 0}},
		{"response", pack(t, resp)},
		{"empty", []byte{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := s.metric(t, "malformed_total")
			if id := firstReplyID(t, s.addr, c.pkt, pack(t, good)); id != good.Id {
				t.Fatalf("first reply has id %d, want %d (the bad packet was answered)", id, good.Id)
			}
			if c.name != "empty" {
				s.waitMetric(t, before+1, "malformed_total")
			}
		})
	}
	if got := z.calls.Load(); got != 3 {
		t.Errorf("handler called %d times, want 3 (the good queries only)", got)
	}
}

func TestGarbageBody(t *testing.T) {
	z := newZone(t)
	s := start(t, frontend.Config{}, z)
	// A valid header claiming one question, then bytes that are no name.
	pkt := []byte{0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0x40, 0x41}
	for _, network := range []string{"udp", "tcp"} {
		got := rawExchange(t, network, s.addr, pkt)
		want := []byte{0xbe, 0xef, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: reply % x, want % x", network, got, want)
		}
	}
	if z.calls.Load() != 0 {
		t.Error("handler called for garbage")
	}
	if got := s.metric(t, "malformed_total"); got != 2 {
		t.Errorf("malformed_total = %v, want 2", got)
	}
}

// blockingHandler blocks queries for names starting with "block" until
// release is closed; others get an A record.
type blockingHandler struct {
	release chan struct{}
	entered chan string
}

func newBlocking() *blockingHandler {
	return &blockingHandler{release: make(chan struct{}), entered: make(chan string, 100)}
}

func (b *blockingHandler) Name() string { return "blocking" }

func (b *blockingHandler) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	name := r.Question[0].Name
	if strings.HasPrefix(name, "block") {
		b.entered <- name
		select {
		case <-b.release:
		case <-ctx.Done():
			return dns.RcodeServerFailure, ctx.Err()
		}
	}
	m := new(dns.Msg).SetReply(r)
	rr, _ := dns.NewRR(name + " 60 IN A 10.0.0.1")
	m.Answer = []dns.RR{rr}
	return dns.RcodeSuccess, w.WriteMsg(m)
}

func TestShedding(t *testing.T) {
	b := newBlocking()
	s := start(t, frontend.Config{MaxInflight: 2, UDPSockets: 1}, b)
	// Two blocked queries fill the in-flight bound.
	blocked := make(chan *dns.Msg, 2)
	for i := range 2 {
		go func() {
			c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
			m := query("block"+string(rune('a'+i))+".example.", dns.TypeA)
			r, _, err := c.Exchange(m, s.addr)
			if err != nil {
				r = nil
			}
			blocked <- r
		}()
	}
	for range 2 {
		select {
		case <-b.entered:
		case <-time.After(5 * time.Second):
			t.Fatal("blocked queries did not reach the handler")
		}
	}
	s.waitMetric(t, 2, "inflight")

	// A bounded burst over UDP is dropped and counted, in paced batches so
	// the kernel's socket buffer never overflows.
	burst, err := net.Dial("udp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer burst.Close()
	p := pack(t, query("x.example.", dns.TypeA))
	const total, batch = 200, 20
	for sent := 0; sent < total; {
		for range batch {
			burst.Write(p)
			sent++
		}
		s.waitMetric(t, float64(sent), "shed_total", "proto", "udp")
	}
	// Over TCP the query is refused instead.
	c := dialTCP(t, s.addr)
	writeTCP(t, c, query("t.example.", dns.TypeA))
	if m := readTCP(t, c); m.Rcode != dns.RcodeRefused || len(m.Question) != 1 {
		t.Fatalf("TCP over the bound: %v, want REFUSED with the question", m)
	}
	if got := s.metric(t, "shed_total", "proto", "tcp"); got != 1 {
		t.Errorf("shed_total tcp = %v, want 1", got)
	}

	close(b.release)
	for range 2 {
		if r := <-blocked; r == nil || r.Rcode != dns.RcodeSuccess {
			t.Fatalf("blocked query: %v", r)
		}
	}
	s.waitMetric(t, 0, "inflight")
	// Normal service resumes, and no shed packet was ever answered.
	q := query("x.example.", dns.TypeA)
	q.Id = 999
	if _, err := burst.Write(pack(t, q)); err != nil {
		t.Fatal(err)
	}
	burst.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 512)
	n, err := burst.Read(buf)
	if err != nil || n < 12 || binary.BigEndian.Uint16(buf) != 999 {
		t.Fatalf("after the burst: %d bytes, %v; want the reply to id 999 first", n, err)
	}
}

func TestSetHandlerWhileServing(t *testing.T) {
	txt := func(v string) resolver.Handler {
		return resolver.HandlerFunc{N: v, F: func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
			m := new(dns.Msg).SetReply(r)
			m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 1}, Txt: []string{v}}}
			return dns.RcodeSuccess, w.WriteMsg(m)
		}}
	}
	s := start(t, frontend.Config{}, txt("old"))
	const workers, each = 4, 50
	swapped := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
			for range each {
				after := false // the swap finished before this query was sent
				select {
				case <-swapped:
					after = true
				default:
				}
				r, _, err := c.Exchange(query("v.example.", dns.TypeTXT), s.addr)
				if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
					errs <- errors.New("query lost or failed")
					return
				}
				if v := r.Answer[0].(*dns.TXT).Txt[0]; after && v != "new" {
					errs <- errors.New("answer from the old handler after the swap: " + v)
					return
				}
			}
		}()
	}
	time.Sleep(5 * time.Millisecond)
	s.f.SetHandler(txt("new"))
	close(swapped)
	s.f.SetHandler(nil) // ignored
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestReusePortSockets(t *testing.T) {
	z := newZone(t, "a.example. 60 IN A 10.0.0.1")
	s := start(t, frontend.Config{UDPSockets: 4}, z)
	// Many client ports spread over the sockets; each must be answered.
	for range 32 {
		got := resvtExchange(t, "udp", s.addr)
		if got.Rcode != dns.RcodeSuccess {
			t.Fatalf("rcode %d", got.Rcode)
		}
	}
	// A fifth socket without SO_REUSEPORT cannot join: the port is held.
	if pc, err := net.ListenPacket("udp4", s.addr); err == nil {
		pc.Close()
		t.Fatalf("plain bind to %s succeeded; want it held by the front end", s.addr)
	}
	if z.calls.Load() != 32 {
		t.Errorf("handler calls %d, want 32", z.calls.Load())
	}
}

func resvtExchange(t *testing.T, network, addr string) *dns.Msg {
	return resolvertest.Exchange(t, network, addr, query("a.example.", dns.TypeA))
}

func TestListenFamilies(t *testing.T) {
	z := newZone(t, "a.example. 60 IN A 10.0.0.1")
	for _, c := range []struct {
		listen, dial, family string
	}{
		{"[::1]:0", "[::1]", "2"},
		// A wildcard socket replies from the address the query went to
		// (IP_PKTINFO); the client's connected socket drops anything else.
		{"0.0.0.0:0", "127.0.0.2", "1"},
		{":0", "127.0.0.3", "1"},
		{"[::]:0", "[::1]", "2"},
	} {
		t.Run(c.listen, func(t *testing.T) {
			if strings.Contains(c.dial, ":") {
				if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
					t.Skipf("no IPv6 loopback: %v", err)
				} else {
					ln.Close()
				}
			}
			s := start(t, frontend.Config{Listen: []string{c.listen}}, z)
			port := s.f.Addrs()[0].Port()
			addr := net.JoinHostPort(strings.Trim(c.dial, "[]"), strconv.Itoa(int(port)))
			for _, network := range []string{"udp", "tcp"} {
				got := resolvertest.Exchange(t, network, addr, query("a.example.", dns.TypeA))
				resolvertest.Case{Qname: "a.example.", Qtype: dns.TypeA, Answer: []string{"a.example. 60 IN A 10.0.0.1"}}.Check(t, got)
			}
			if got := s.metric(t, "requests_total", "proto", "udp", "family", c.family, "type", "A"); got != 1 {
				t.Errorf("requests_total family %s = %v, want 1", c.family, got)
			}
		})
	}
}

func TestLogQueries(t *testing.T) {
	var buf syncBuffer
	z := newZone(t, "a.example. 60 IN A 10.0.0.1")
	f, err := frontend.New(frontend.Config{Listen: []string{"127.0.0.1:0"}, LogQueries: true}, z,
		frontend.Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	resolvertest.Exchange(t, "udp", f.Addrs()[0].String(), query("a.example.", dns.TypeA))
	if err := f.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, "name=a.example. type=A rcode=NOERROR") {
		t.Fatalf("log has no query line:\n%s", out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBurstFromManyClients: datagrams that queue up while the reader is busy
// are read several at a time (recvmmsg on Linux); every one is answered once,
// to its own sender.
func TestBurstFromManyClients(t *testing.T) {
	z := newZone(t, "a.example. 60 IN A 10.0.0.1")
	s := start(t, frontend.Config{UDPSockets: 1}, z)
	const clients, perClient = 8, 10
	conns := make([]net.Conn, clients)
	for i := range conns {
		c, err := net.Dial("udp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for j := range perClient {
		for i, c := range conns {
			q := query("a.example.", dns.TypeA)
			q.Id = uint16(i<<8 | j)
			if _, err := c.Write(pack(t, q)); err != nil {
				t.Fatal(err)
			}
		}
	}
	buf := make([]byte, 512)
	for i, c := range conns {
		seen := map[uint16]bool{}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for range perClient {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("client %d: %d replies, then %v", i, len(seen), err)
			}
			id := binary.BigEndian.Uint16(buf[:n])
			if int(id>>8) != i || seen[id] {
				t.Fatalf("client %d got reply id %#x (another client's, or twice)", i, id)
			}
			seen[id] = true
		}
	}
}
