package frontend_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
	"github.com/clusterdns/clusterdns/server/frontend"
)

// inlineChain serves names starting with "inline" inline (answered, failed
// without writing, or panicking per the next label) and everything else
// through ServeDNS, counting both.
type inlineChain struct {
	inline, full atomic.Int64
}

func (c *inlineChain) Name() string { return "inline" }

func (c *inlineChain) ServeInline(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (bool, int, error) {
	name := r.Question[0].Name
	if !strings.HasPrefix(name, "inline") {
		return false, 0, nil
	}
	c.inline.Add(1)
	switch {
	case strings.HasPrefix(name, "inline.fail."):
		return true, dns.RcodeServerFailure, nil
	case strings.HasPrefix(name, "inline.panic."):
		panic("inline panic")
	}
	return true, dns.RcodeSuccess, w.WriteMsg(aReply(r, "10.0.0.1"))
}

func (c *inlineChain) ServeDNS(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	c.full.Add(1)
	return dns.RcodeSuccess, w.WriteMsg(aReply(r, "10.0.0.2"))
}

func aReply(r *dns.Msg, ip string) *dns.Msg {
	m := new(dns.Msg).SetReply(r)
	m.Answer = []dns.RR{&dns.A{
		Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
		A:   net.ParseIP(ip)}}
	return m
}

// TestInlineServing: over UDP a chain that answers a query inline is not
// run again on a worker, one that declines gets ServeDNS, an inline error
// rcode gets the front end's reply and an inline panic SERVFAIL; over TCP
// ServeInline is never asked.
func TestInlineServing(t *testing.T) {
	c := &inlineChain{}
	s := start(t, frontend.Config{}, c)
	for _, tc := range []struct {
		name, network string
		rcode         int
		answer        []string
		inline, full  int64
	}{
		{"inline.example.", "udp", dns.RcodeSuccess, []string{"inline.example. 60 IN A 10.0.0.1"}, 1, 0},
		{"other.example.", "udp", dns.RcodeSuccess, []string{"other.example. 60 IN A 10.0.0.2"}, 1, 1},
		{"inline.fail.example.", "udp", dns.RcodeServerFailure, nil, 2, 1},
		{"inline.panic.example.", "udp", dns.RcodeServerFailure, nil, 3, 1},
		{"inline.example.", "tcp", dns.RcodeSuccess, []string{"inline.example. 60 IN A 10.0.0.2"}, 3, 2},
	} {
		got, _ := exchange(t, tc.network, s.addr, withEDNS(query(tc.name, dns.TypeA), 1232, false))
		checkHeader(t, got, tc.rcode, true, true)
		resolvertest.Case{Qname: tc.name, Qtype: dns.TypeA, Rcode: tc.rcode, Answer: tc.answer}.Check(t, got)
		if c.inline.Load() != tc.inline || c.full.Load() != tc.full {
			t.Errorf("%s over %s: inline %d full %d, want %d %d", tc.name, tc.network, c.inline.Load(), c.full.Load(), tc.inline, tc.full)
		}
	}
	if got := s.metric(t, "panics_total"); got != 1 {
		t.Errorf("panics_total %v, want 1", got)
	}
}

// TestInlineBurst sends a burst of queries, so that the reader takes them in
// batches and sends the replies it answers itself together: each query gets
// exactly its own reply, from the address it was sent to (a wildcard
// listener sets the source of each), and every query is counted once in
// responses and in the latency histogram.
func TestInlineBurst(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", "0.0.0.0:0"} {
		t.Run(listen, func(t *testing.T) {
			c := &inlineChain{}
			s := start(t, frontend.Config{Listen: []string{listen}, UDPSockets: 1}, c)
			port := s.f.Addrs()[0].Port()
			conn, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			const n = 99 // a multiple of 3: one third each name
			names := []string{"inline.example.", "inline.fail.example.", "other.example."}
			rcodes := []int{dns.RcodeSuccess, dns.RcodeServerFailure, dns.RcodeSuccess}
			for i := range n {
				m := withEDNS(query(names[i%3], dns.TypeA), 1232, false)
				m.Id = uint16(i)
				b, err := m.Pack()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := conn.Write(b); err != nil {
					t.Fatal(err)
				}
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			seen := make(map[uint16]bool)
			buf := make([]byte, 1232)
			for range n {
				k, err := conn.Read(buf)
				if err != nil {
					t.Fatalf("%d replies of %d: %v", len(seen), n, err)
				}
				r := new(dns.Msg)
				if err := r.Unpack(buf[:k]); err != nil {
					t.Fatal(err)
				}
				i := int(r.Id)
				if i >= n || seen[r.Id] {
					t.Fatalf("reply with ID %d: unknown or repeated", r.Id)
				}
				seen[r.Id] = true
				if r.Question[0].Name != names[i%3] || r.Rcode != rcodes[i%3] || r.IsEdns0() == nil {
					t.Errorf("reply %d: %s rcode %d, want %s %d with EDNS", i, r.Question[0].Name, r.Rcode, names[i%3], rcodes[i%3])
				}
			}
			s.waitMetric(t, 0, "inflight")
			if got := s.metric(t, "request_duration_seconds"); got != n {
				t.Errorf("request_duration_seconds count %v, want %d", got, n)
			}
			if got := s.metric(t, "responses_total", "rcode", "NOERROR"); got != 2*n/3 {
				t.Errorf("NOERROR responses %v, want %d", got, 2*n/3)
			}
			if got := s.metric(t, "responses_total", "rcode", "SERVFAIL"); got != n/3 {
				t.Errorf("SERVFAIL responses %v, want %d", got, n/3)
			}
		})
	}
}
