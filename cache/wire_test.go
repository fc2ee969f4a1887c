package cache

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/server/frontend"
)

// refReply is the hit reply as a message, the way the cache built it before
// entries were stored as bytes: the stored message with the client's ID, RD,
// CD and question, AA and TC clear, AD only for clients asking with DO or AD,
// answer owners equal to the question name spelled as the client did, and
// every TTL set to ttl.
func refReply(r, s *dns.Msg, ttl uint32) *dns.Msg {
	m := new(dns.Msg)
	m.MsgHdr = s.MsgHdr
	m.Id = r.Id
	m.Opcode = r.Opcode
	m.RecursionDesired = r.RecursionDesired
	m.CheckingDisabled = r.CheckingDisabled
	m.Authoritative = false
	m.Truncated = false
	m.AuthenticatedData = s.AuthenticatedData && (r.AuthenticatedData || doBit(r))
	m.Question = []dns.Question{r.Question[0]}
	qname := r.Question[0].Name
	section := func(src []dns.RR, owner bool) []dns.RR {
		var out []dns.RR
		for _, rr := range src {
			if rr.Header().Rrtype == dns.TypeOPT {
				continue
			}
			c := dns.Copy(rr)
			c.Header().Ttl = ttl
			if owner && strings.EqualFold(c.Header().Name, qname) {
				c.Header().Name = qname
			}
			out = append(out, c)
		}
		return out
	}
	m.Answer = section(s.Answer, true)
	m.Ns = section(s.Ns, false)
	m.Extra = section(s.Extra, false)
	return m
}

// msgOnly hides WriteWire, so the cache writes hits as messages.
type msgOnly struct{ dns.ResponseWriter }

// TestHitBytesMatchMessages: a miss reaches the client byte for byte as the
// next stage's reply written as a message, and a hit written as patched
// bytes byte for byte as the reference message built from the stored reply,
// and so does the cache's message path for writers without WriteWire; for
// EDNS and not, DO, AD, CD, mixed-case questions, negative answers, glue,
// TCP and replies the front end must truncate.
func TestHitBytesMatchMessages(t *testing.T) {
	a := func(answer ...string) func(r *dns.Msg) *dns.Msg {
		return func(r *dns.Msg) *dns.Msg { return build(r, dns.RcodeSuccess, answer, nil) }
	}
	secure := func(r *dns.Msg) *dns.Msg {
		m := a("web.example. 300 IN A 10.0.0.1")(r)
		m.AuthenticatedData = true
		m.SetEdns0(4096, true) // the upstream's OPT is not stored
		return m
	}
	var many []string
	for i := range 60 {
		many = append(many, "big.example. 300 IN A 10.0."+string(rune('0'+i/10))+"."+string(rune('0'+i%10)))
	}
	glue := func(r *dns.Msg) *dns.Msg {
		m := build(r, dns.RcodeSuccess, []string{"www.example. 300 IN CNAME web.example.", "web.example. 300 IN A 10.0.0.1"},
			[]string{"example. 300 IN NS ns.example."})
		m.Extra = rrs([]string{"ns.example. 300 IN A 10.0.0.53"})
		m.SetEdns0(1232, false)
		return m
	}
	soa := []string{"example. 300 IN SOA ns.example. host.example. 1 7200 900 1209600 60"}
	edns := func(m *dns.Msg, do bool) *dns.Msg { m.SetEdns0(1232, do); return m }
	flags := func(m *dns.Msg, rd, cd, ad bool) *dns.Msg {
		m.RecursionDesired, m.CheckingDisabled, m.AuthenticatedData = rd, cd, ad
		return m
	}
	for _, tc := range []struct {
		name      string
		stored    func(*dns.Msg) *dns.Msg
		miss, hit *dns.Msg
		tcp       bool
	}{
		{"a", a("web.example. 300 IN A 10.0.0.1"), q("web.example.", dns.TypeA), q("web.example.", dns.TypeA), false},
		{"edns", a("web.example. 300 IN A 10.0.0.1"), edns(q("web.example.", dns.TypeA), false), edns(q("web.example.", dns.TypeA), false), false},
		{"do-keeps-ad", secure, edns(q("web.example.", dns.TypeA), true), edns(q("web.example.", dns.TypeA), true), false},
		{"no-do-clears-ad", secure, q("web.example.", dns.TypeA), q("web.example.", dns.TypeA), false},
		{"client-ad-keeps-ad", secure, q("web.example.", dns.TypeA), flags(q("web.example.", dns.TypeA), true, false, true), false},
		{"rd-cd", a("web.example. 300 IN A 10.0.0.1"), flags(q("web.example.", dns.TypeA), true, true, false), flags(q("web.example.", dns.TypeA), false, true, false), false},
		{"mixed-case-hit", a("web.example. 300 IN A 10.0.0.1", "web.example. 300 IN A 10.0.0.2"), q("web.example.", dns.TypeA), q("WeB.ExAmple.", dns.TypeA), false},
		{"mixed-case-stored", a("WeB.example. 300 IN A 10.0.0.1"), q("WeB.example.", dns.TypeA), edns(q("web.EXAMPLE.", dns.TypeA), false), false},
		{"cname-chain", a("www.example. 300 IN CNAME web.example.", "web.example. 300 IN A 10.0.0.1"), q("www.example.", dns.TypeA), q("WWW.example.", dns.TypeA), false},
		{"nxdomain", func(r *dns.Msg) *dns.Msg { return build(r, dns.RcodeNameError, nil, soa) }, q("nope.example.", dns.TypeA), q("NOPE.example.", dns.TypeA), false},
		{"nodata", func(r *dns.Msg) *dns.Msg { return build(r, dns.RcodeSuccess, nil, soa) }, q("web.example.", dns.TypeMX), edns(q("web.example.", dns.TypeMX), false), false},
		{"glue", glue, edns(q("www.example.", dns.TypeA), false), edns(q("www.example.", dns.TypeA), false), false},
		{"escaped-name", a(`a\.b.example. 300 IN A 10.0.0.1`), q(`a\.b.example.`, dns.TypeA), q(`A\.B.example.`, dns.TypeA), false},
		{"tcp", a("web.example. 300 IN A 10.0.0.1"), q("web.example.", dns.TypeA), q("Web.example.", dns.TypeA), true},
		{"truncated", a(many...), q("big.example.", dns.TypeA), q("big.example.", dns.TypeA), false},
		{"fits-edns", a(many...), q("big.example.", dns.TypeA), edns(q("big.example.", dns.TypeA), false), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Default(), newFake(func(_ context.Context, r *dns.Msg) (*dns.Msg, int, error) {
				m := tc.stored(r)
				return m, m.Rcode, nil
			}))
			// The miss goes to the client as the stored bytes: they must be
			// what writing the next stage's reply as a message gives.
			tc.miss.Id = 0x1357
			missPkt, err := tc.miss.Pack()
			if err != nil {
				t.Fatal(err)
			}
			gotMiss := servePacket(t, e.h, missPkt, tc.tcp)
			wantMiss := servePacket(t, resolver.HandlerFunc{N: "ref", F: func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
				m := tc.stored(r)
				return m.Rcode, w.WriteMsg(m)
			}}, missPkt, tc.tcp)
			if !bytes.Equal(gotMiss, wantMiss) {
				t.Errorf("miss sent\n% x\nreference\n% x", gotMiss, wantMiss)
			}
			e.clock.Advance(2 * time.Second)
			k := keyOf(tc.hit)
			ent := e.c.shard(k).lookup(k, e.clock.Now(), 0)
			if ent == nil {
				t.Fatal("the hit query does not hit")
			}
			ttl := uint32(ent.remaining(e.clock.Now()) / time.Second)
			stored := tc.stored(tc.miss)
			handlers := map[string]resolver.Handler{
				"bytes": e.h,
				"message": resolver.HandlerFunc{N: "msg", F: func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
					return e.h.ServeDNS(ctx, msgOnly{w}, r)
				}},
				"reference": resolver.HandlerFunc{N: "ref", F: func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
					m := refReply(r, stored, ttl)
					return m.Rcode, w.WriteMsg(m)
				}},
			}
			tc.hit.Id = 0x2468
			pkt, err := tc.hit.Pack()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]byte{}
			for name, h := range handlers {
				got[name] = servePacket(t, h, pkt, tc.tcp)
			}
			hits := e.metric("hits_total", "type", "success") + e.metric("hits_total", "type", "denial")
			if hits != 2 {
				t.Errorf("hits_total %v, want 2", hits)
			}
			for _, name := range []string{"bytes", "message"} {
				if !bytes.Equal(got[name], got["reference"]) {
					t.Errorf("%s path sent\n% x\nreference\n% x", name, got[name], got["reference"])
				}
			}
		})
	}
}

// servePacket runs pkt through a front end serving h and returns the reply.
func servePacket(t *testing.T, h resolver.Handler, pkt []byte, tcp bool) []byte {
	t.Helper()
	f, err := frontend.New(frontend.Config{Listen: []string{"127.0.0.1:0"}, UDPSockets: 1}, h, frontend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer f.Stop(ctx)
	replies, err := f.ServePacket(ctx, pkt, netip.MustParseAddrPort("127.0.0.1:40000"), tcp)
	if err != nil || len(replies) != 1 {
		t.Fatalf("%d replies, err %v", len(replies), err)
	}
	return replies[0]
}
