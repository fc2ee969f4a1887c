package main

import (
	"log/slog"
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

func TestStubAnswers(t *testing.T) {
	s, err := startStub("127.0.0.1:0", 3600, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	cases := []resolvertest.Case{
		{Qname: "x1.miss.bench.example.", Qtype: dns.TypeA, Answer: []string{"x1.miss.bench.example. 3600 IN A 192.0.2.1"}},
		{Qname: "MiXed.Example.", Qtype: dns.TypeAAAA, Answer: []string{"MiXed.Example. 3600 IN AAAA 2001:db8::1"}},
		{Qname: ".", Qtype: dns.TypeNS},
		{Qname: "x.example.", Qtype: dns.TypeMX},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, c := range cases {
			for _, edns := range []bool{false, true} {
				m := c.Msg()
				if edns {
					m.SetEdns0(1232, false)
				}
				r := resolvertest.Exchange(t, network, s.Addr().String(), m)
				c.Check(t, r)
				if !r.Response || !r.RecursionAvailable || !r.RecursionDesired || r.Id != m.Id {
					t.Errorf("%s %s: header %+v", network, c.Qname, r.MsgHdr)
				}
				if got := r.IsEdns0() != nil; got != edns {
					t.Errorf("%s %s: EDNS in reply %v, in query %v", network, c.Qname, got, edns)
				}
			}
		}
	}
}

func TestStubDropsNonQueries(t *testing.T) {
	q := resolvertest.Query("a.example.", dns.TypeA)
	wire, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	resp := append([]byte(nil), wire...)
	resp[2] |= 0x80
	tests := map[string][]byte{
		"short":       wire[:11],
		"response":    resp,
		"truncated":   wire[:len(wire)-2],
		"no question": append(append([]byte(nil), wire[:4]...), make([]byte, 8)...),
	}
	for name, pkt := range tests {
		if _, err := appendReply(nil, pkt, 1); err == nil {
			t.Errorf("%s: got a reply, want none", name)
		}
	}
	if _, err := appendReply(nil, wire, 1); err != nil {
		t.Errorf("well-formed query: %v", err)
	}
}
