package forward

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// zoneHandler answers from a table of cases keyed by qname, so a test can
// compare the forwarded reply with exactly what the upstream sent.
func zoneHandler(t testing.TB, seen *recorder, cases []resolvertest.Case) dns.HandlerFunc {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		seen.add(r, w.RemoteAddr())
		m := new(dns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		for _, c := range cases {
			if !strings.EqualFold(c.Qname, r.Question[0].Name) || c.Qtype != r.Question[0].Qtype {
				continue
			}
			m.Rcode = c.Rcode
			m.Authoritative = c.AA
			m.Answer = rrs(t, c.Answer)
			m.Ns = rrs(t, c.Ns)
			m.Extra = rrs(t, c.Extra)
		}
		_ = w.WriteMsg(m)
	}
}

func rrs(t testing.TB, ss []string) []dns.RR {
	var out []dns.RR
	for _, s := range ss {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Errorf("record %q: %v", s, err)
			continue
		}
		out = append(out, rr)
	}
	return out
}

func TestForwardWholeReply(t *testing.T) {
	cases := []resolvertest.Case{
		{Qname: "www.example.org.", Qtype: dns.TypeA, CheckAA: true,
			Answer: []string{"www.example.org. 300 IN A 192.0.2.1", "www.example.org. 300 IN A 192.0.2.2"},
			Ns:     []string{"example.org. 3600 IN NS ns1.example.org."},
			Extra:  []string{"ns1.example.org. 3600 IN A 192.0.2.53"}},
		{Qname: "nx.example.org.", Qtype: dns.TypeAAAA, Rcode: dns.RcodeNameError, CheckAA: true, AA: true,
			Ns: []string{"example.org. 900 IN SOA ns1.example.org. admin.example.org. 7 3600 600 86400 900"}},
		{Qname: "Mail.Example.org.", Qtype: dns.TypeMX,
			Answer: []string{"mail.example.org. 60 IN MX 10 mx.example.org."},
			Extra:  []string{"mx.example.org. 60 IN A 192.0.2.25"}},
	}
	seen := &recorder{}
	stub := resolvertest.StartServer(t, zoneHandler(t, seen, cases))
	f := start(t, testConfig(stub.Addr))

	for i, c := range cases {
		for _, do := range []bool{false, true} {
			q := c.Msg()
			q.Id = 1000 + uint16(i)
			q.CheckingDisabled = do
			if do {
				q.SetEdns0(4096, true)
			}
			got, rcode, err := ask(t, f, q)
			if err != nil || got == nil {
				t.Fatalf("%s: rcode %d err %v, reply written %v", c.Qname, rcode, err, got != nil)
			}
			if rcode != c.Rcode || got.Id != q.Id || !got.Response || !got.RecursionAvailable || got.Truncated {
				t.Errorf("%s: rcode %d id %d qr %v ra %v tc %v; want rcode %d id %d, QR RA, no TC",
					c.Qname, rcode, got.Id, got.Response, got.RecursionAvailable, got.Truncated, c.Rcode, q.Id)
			}
			if len(got.Question) != 1 || !strings.EqualFold(got.Question[0].Name, c.Qname) || got.Question[0].Qtype != c.Qtype {
				t.Errorf("%s: question %v", c.Qname, got.Question)
			}
			c.Check(t, got)

			msgs, _ := seen.snapshot()
			up := msgs[len(msgs)-1]
			opt := up.IsEdns0()
			if opt == nil || opt.UDPSize() != ednsSize || opt.Do() != do || len(opt.Option) != 0 {
				t.Errorf("%s: upstream OPT %v, want size %d DO %v and no options", c.Qname, opt, ednsSize, do)
			}
			if !up.RecursionDesired || up.CheckingDisabled != do || len(up.Extra) != 1 {
				t.Errorf("%s: upstream query RD %v CD %v extra %d, want RD, CD %v, only our OPT",
					c.Qname, up.RecursionDesired, up.CheckingDisabled, len(up.Extra), do)
			}
		}
	}
}

func TestTruncatedUDPRetriedOverTCP(t *testing.T) {
	want := resolvertest.Case{Qname: "big.example.org.", Qtype: dns.TypeA, Answer: []string{
		"big.example.org. 60 IN A 192.0.2.1", "big.example.org. 60 IN A 192.0.2.2", "big.example.org. 60 IN A 192.0.2.3"}}
	seen := &recorder{}
	stub := resolvertest.StartServer(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		seen.add(r, w.RemoteAddr())
		m := new(dns.Msg)
		m.SetReply(r)
		if _, tcp := w.RemoteAddr().(*net.TCPAddr); tcp {
			m.Answer = rrs(t, want.Answer)
		} else {
			m.Truncated = true
		}
		_ = w.WriteMsg(m)
	}))
	f := start(t, testConfig(stub.Addr))

	got := mustAnswer(t, f, want.Qname, want.Qtype)
	want.Check(t, got)
	if got.Truncated {
		t.Error("reply still has TC set")
	}
	_, from := seen.snapshot()
	if len(from) != 2 || !isUDP(from[0]) || isUDP(from[1]) {
		t.Errorf("upstream saw %v, want one UDP then one TCP query", from)
	}
	if n := value(t, f.m.tcpFallbacks); n != 1 {
		t.Errorf("tcp_fallbacks_total %v, want 1", n)
	}
	if n := value(t, f.m.requests.WithLabelValues(stub.Addr)); n != 2 {
		t.Errorf("requests_total %v, want 2", n)
	}
}

func isUDP(a net.Addr) bool { _, ok := a.(*net.UDPAddr); return ok }

func TestForceTCP(t *testing.T) {
	seen := &recorder{}
	stub := resolvertest.StartServer(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		seen.add(r, w.RemoteAddr())
		_ = w.WriteMsg(aReply(r, "192.0.2.1"))
	}))
	cfg := testConfig(stub.Addr)
	cfg.ForceTCP = true
	f := start(t, cfg)
	for range 3 {
		if got := mustAnswer(t, f, "tcp.example.org.", dns.TypeA); answeredBy(got) != "192.0.2.1" {
			t.Fatalf("answer %v", got.Answer)
		}
	}
	_, from := seen.snapshot()
	for _, a := range from {
		if isUDP(a) {
			t.Fatalf("upstream saw a UDP query with forceTCP: %v", from)
		}
	}
	if len(from) != 3 || from[0].String() != from[2].String() {
		t.Errorf("upstream saw %v, want 3 queries on one pooled TCP connection", from)
	}
}

func TestRandomIDsAndClientIDRestored(t *testing.T) {
	seen := &recorder{}
	stub := resolvertest.StartServer(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		seen.add(r, w.RemoteAddr())
		_ = w.WriteMsg(aReply(r, "192.0.2.1"))
	}))
	f := start(t, testConfig(stub.Addr))
	const n = 32
	for range n {
		q := resolvertest.Query("id.example.org.", dns.TypeA)
		q.Id = 4242
		got, _, err := ask(t, f, q)
		if err != nil || got == nil || got.Id != 4242 {
			t.Fatalf("reply %v err %v, want ID 4242", got, err)
		}
	}
	msgs, _ := seen.snapshot()
	ids := map[uint16]bool{}
	for _, m := range msgs {
		ids[m.Id] = true
	}
	// 32 draws from 65536 collide more than twice with odds below 1e-6
	if len(msgs) != n || len(ids) < n-2 {
		t.Errorf("%d upstream queries with %d distinct IDs, want %d with (nearly) all distinct", len(msgs), len(ids), n)
	}
}

func TestMismatchedRepliesDropped(t *testing.T) {
	const ip = "192.0.2.1"
	stub := startUDPStub(t, ip, true, func(pc net.PacketConn, from net.Addr, r *dns.Msg) {
		send := func(m *dns.Msg) {
			b, _ := m.Pack()
			_, _ = pc.WriteTo(b, from)
		}
		wrongID := aReply(r, "192.0.2.66")
		wrongID.Id ^= 0x5a5a
		wrongName := aReply(r, "192.0.2.67")
		wrongName.Question[0].Name = "other.example.org."
		wrongType := aReply(r, "192.0.2.68")
		wrongType.Question[0].Qtype = dns.TypeAAAA
		notReply := aReply(r, "192.0.2.69")
		notReply.Response = false
		right := aReply(r, ip)
		right.Question[0].Name = strings.ToUpper(r.Question[0].Name) // case differs: still ours
		for _, m := range []*dns.Msg{wrongID, wrongName, wrongType, notReply, right} {
			send(m)
		}
	})
	f := start(t, testConfig(stub.addr))
	got := mustAnswer(t, f, "spoof.example.org.", dns.TypeA)
	if answeredBy(got) != stub.ip {
		t.Errorf("answer %v, want the matching reply (%s)", got.Answer, stub.ip)
	}
	if n := value(t, f.m.mismatched.WithLabelValues(stub.addr)); n != 4 {
		t.Errorf("mismatched_replies_total %v, want 4", n)
	}
}

func TestZoneRouting(t *testing.T) {
	parent := resolvertest.StartServer(t, aHandler("192.0.2.1"))
	child := resolvertest.StartServer(t, aHandler("192.0.2.2"))
	def := resolvertest.StartServer(t, aHandler("192.0.2.3"))
	cfg := testConfig(def.Addr)
	cfg.Zones = map[string][]string{
		"Example.ORG":      {parent.Addr},
		"sub.example.org.": {child.Addr},
	}
	f := start(t, cfg)
	for _, tc := range []struct{ qname, want string }{
		{"a.sub.example.org.", "192.0.2.2"},
		{"A.SUB.Example.Org.", "192.0.2.2"},
		{"sub.example.org.", "192.0.2.2"},
		{"b.example.org.", "192.0.2.1"},
		{"example.org.", "192.0.2.1"},
		{"xsub.example.org.", "192.0.2.1"},
		{"example.com.", "192.0.2.3"},
		{"org.", "192.0.2.3"},
	} {
		if got := answeredBy(mustAnswer(t, f, tc.qname, dns.TypeA)); got != tc.want {
			t.Errorf("%s answered by %s, want %s", tc.qname, got, tc.want)
		}
	}
	if got := len(f.Upstreams()); got != 3 {
		t.Errorf("Upstreams() has %d entries, want 3", got)
	}
}

func TestPolicyOrder(t *testing.T) {
	ips := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}
	var addrs []string
	for _, ip := range ips {
		addrs = append(addrs, resolvertest.StartServer(t, aHandler(ip)).Addr)
	}
	for _, tc := range []struct {
		policy string
		want   []string // answering stub per query; nil: random
	}{
		{PolicySequential, []string{ips[0], ips[0], ips[0], ips[0]}},
		{PolicyRoundRobin, []string{ips[0], ips[1], ips[2], ips[0], ips[1], ips[2]}},
		{PolicyRandom, nil},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			cfg := testConfig(addrs...)
			cfg.Policy = tc.policy
			f := start(t, cfg)
			if tc.want != nil {
				for i, want := range tc.want {
					if got := answeredBy(mustAnswer(t, f, "p.example.org.", dns.TypeA)); got != want {
						t.Errorf("query %d answered by %s, want %s", i, got, want)
					}
				}
				return
			}
			firsts := map[string]int{}
			for range 60 { // each stub first with odds 1-(2/3)^60
				firsts[answeredBy(mustAnswer(t, f, "p.example.org.", dns.TypeA))]++
			}
			for _, ip := range ips {
				if firsts[ip] == 0 {
					t.Errorf("random policy never picked %s first in 60 queries: %v", ip, firsts)
				}
			}
		})
	}
}

func TestRandomOrderIsPermutation(t *testing.T) {
	g := &group{policy: PolicyRandom}
	for i := range 5 {
		g.ups = append(g.ups, &upstream{label: string(rune('a' + i))})
	}
	for range 100 {
		got := g.order(nil)
		seen := map[string]bool{}
		for _, u := range got {
			seen[u.label] = true
		}
		if len(got) != 5 || len(seen) != 5 {
			t.Fatalf("order %v is not a permutation", got)
		}
	}
}

func TestNoQuestionIsFormErr(t *testing.T) {
	f := start(t, testConfig("127.0.0.1:1"))
	got, rcode, err := ask(t, f, new(dns.Msg))
	if rcode != dns.RcodeFormatError || got != nil || err == nil {
		t.Errorf("rcode %d reply %v err %v, want FORMERR, nothing written, an error", rcode, got, err)
	}
}

func TestUnpackableQueryIsFormErrAndNotAFailure(t *testing.T) {
	stub := startUDPStub(t, "192.0.2.1", true, nil)
	cfg := testConfig(stub.addr)
	cfg.MaxFails = 1
	f := start(t, cfg)
	long := strings.Repeat(strings.Repeat("a", 60)+".", 5) // 305 bytes: over the 255 limit
	got, rcode, err := ask(t, f, resolvertest.Query(long, dns.TypeA))
	if rcode != dns.RcodeFormatError || got != nil || !errors.Is(err, errPack) {
		t.Errorf("rcode %d reply %v err %v, want FORMERR unwritten, errPack", rcode, got, err)
	}
	if u := upstreamOf(t, f, stub.addr); u.down.Load() || u.fails.Load() != 0 {
		t.Errorf("upstream blamed for an unpackable query: down %v fails %d", u.down.Load(), u.fails.Load())
	}
	if n := stub.sync(t); n != 0 {
		t.Errorf("upstream saw %d queries, want 0", n)
	}
}
