package frontend_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/server/frontend"
)

// wireWriter is how the cache sends a stored reply (see cache/wire.go).
type wireWriter interface{ WriteWire([]byte) error }

// replyHandler answers every query with the reply build makes, written as a
// message or, with wire, packed uncompressed without OPT through WriteWire.
type replyHandler struct {
	wire  bool
	build func(r *dns.Msg) *dns.Msg
}

func (h *replyHandler) Name() string { return "reply" }

func (h *replyHandler) ServeDNS(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	m := h.build(r)
	if !h.wire {
		return m.Rcode, w.WriteMsg(m)
	}
	s := *m
	s.Compress = false
	s.Extra = nil
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			s.Extra = append(s.Extra, rr)
		}
	}
	b, err := s.Pack()
	if err != nil {
		return dns.RcodeServerFailure, err
	}
	ww, ok := w.(wireWriter)
	if !ok {
		return dns.RcodeServerFailure, fmt.Errorf("%T has no WriteWire", w)
	}
	return m.Rcode, ww.WriteWire(b)
}

// TestWriteWireMatchesWriteMsg: a reply written as bytes reaches the client
// byte for byte as the same reply written as a message, whatever the
// client's EDNS, DO bit, spelling and transport, and when it needs
// truncating (WriteWire then takes the message path).
func TestWriteWireMatchesWriteMsg(t *testing.T) {
	a := func(n int) func(r *dns.Msg) *dns.Msg {
		return func(r *dns.Msg) *dns.Msg {
			m := new(dns.Msg).SetReply(r)
			for i := range n {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   []byte{10, 0, byte(i >> 8), byte(i)}})
			}
			return m
		}
	}
	flags := func(r *dns.Msg) *dns.Msg {
		m := a(1)(r)
		m.Authoritative, m.AuthenticatedData, m.CheckingDisabled, m.Zero = true, true, true, true
		m.RecursionDesired = false
		return m
	}
	nxdomain := func(r *dns.Msg) *dns.Msg {
		m := new(dns.Msg).SetRcode(r, dns.RcodeNameError)
		m.Ns = rrs(t, "example. 300 IN SOA ns.example. host.example. 1 7200 900 1209600 60")
		return m
	}
	glue := func(r *dns.Msg) *dns.Msg {
		m := new(dns.Msg).SetReply(r)
		m.Answer = rrs(t, r.Question[0].Name+" 60 IN CNAME web.example.", "web.example. 60 IN A 10.0.0.1")
		m.Ns = rrs(t, "example. 60 IN NS ns.example.")
		m.Extra = rrs(t, "ns.example. 60 IN A 10.0.0.53")
		// an OPT of the upstream's own, which the front end replaces
		m.SetEdns0(4096, true)
		return m
	}
	for _, tc := range []struct {
		name  string
		build func(*dns.Msg) *dns.Msg
		q     *dns.Msg
		tcp   bool
	}{
		{"plain", a(1), query("web.example.", dns.TypeA), false},
		{"edns", a(1), withEDNS(query("web.example.", dns.TypeA), 1232, false), false},
		{"edns-do", a(1), withEDNS(query("web.example.", dns.TypeA), 4096, true), false},
		{"edns-small-buffer", a(1), withEDNS(query("web.example.", dns.TypeA), 100, false), false},
		{"mixed-case", a(2), withEDNS(query("WeB.ExAmPlE.", dns.TypeA), 1232, false), false},
		{"flags", flags, query("web.example.", dns.TypeA), false},
		{"nxdomain", nxdomain, withEDNS(query("nope.example.", dns.TypeA), 1232, true), false},
		{"glue-and-upstream-opt", glue, withEDNS(query("www.example.", dns.TypeA), 1232, true), false},
		{"glue-no-edns", glue, query("www.example.", dns.TypeA), false},
		{"tcp", a(3), query("web.example.", dns.TypeA), true},
		{"tcp-edns", a(3), withEDNS(query("web.example.", dns.TypeA), 1232, true), true},
		// uncompressed 40 records pass 512 but fit 1232
		{"fits-edns-only", a(40), withEDNS(query("big.example.", dns.TypeA), 1232, false), false},
		{"truncated-no-edns", a(40), query("big.example.", dns.TypeA), false},
		{"truncated-edns", a(200), withEDNS(query("big.example.", dns.TypeA), 1232, true), false},
		{"over-udp-cap", a(300), withEDNS(query("big.example.", dns.TypeA), 65000, false), false},
		{"big-tcp", a(300), query("big.example.", dns.TypeA), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			network := "udp"
			if tc.tcp {
				network = "tcp"
			}
			tc.q.Id = 0x4321
			tc.q.RecursionDesired = true
			var got [2][]byte
			for i, wire := range []bool{false, true} {
				s := start(t, frontend.Config{UDPSockets: 1}, &replyHandler{wire: wire, build: tc.build})
				got[i] = rawExchange(t, network, s.addr, pack(t, tc.q))
			}
			if !bytes.Equal(got[0], got[1]) {
				t.Fatalf("WriteWire sent\n% x\nWriteMsg sent\n% x", got[1], got[0])
			}
			m := new(dns.Msg)
			if err := m.Unpack(got[1]); err != nil {
				t.Fatalf("unpack: %v", err)
			}
			checkHeader(t, m, tc.build(tc.q).Rcode, true, tc.q.IsEdns0() != nil)
			if o := m.IsEdns0(); o != nil && (o.UDPSize() != 1232 || o.Do() != tc.q.IsEdns0().Do()) {
				t.Errorf("OPT size %d DO %v, want 1232 and the client's DO", o.UDPSize(), o.Do())
			}
		})
	}
}
