package frontend_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
	"github.com/clusterdns/clusterdns/server/frontend"
)

func TestAnswer(t *testing.T) {
	z := newZone(t,
		"web.default.svc.cluster.local. 5 IN A 10.0.0.1",
		"web.default.svc.cluster.local. 5 IN A 10.0.0.2",
		"web.default.svc.cluster.local. 5 IN AAAA fd00::1",
	)
	s := start(t, frontend.Config{}, z)
	cases := []resolvertest.Case{
		{Qname: "web.default.svc.cluster.local.", Qtype: dns.TypeA, Answer: []string{
			"web.default.svc.cluster.local. 5 IN A 10.0.0.1",
			"web.default.svc.cluster.local. 5 IN A 10.0.0.2",
		}},
		{Qname: "Web.Default.svc.cluster.local.", Qtype: dns.TypeAAAA, Answer: []string{
			"web.default.svc.cluster.local. 5 IN AAAA fd00::1",
		}},
		{Qname: "none.default.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, c := range cases {
			t.Run(network+" "+c.Qname, func(t *testing.T) {
				for _, edns := range []bool{false, true} {
					m := c.Msg()
					if edns {
						withEDNS(m, 4096, false)
					}
					got, _ := exchange(t, network, s.addr, m)
					c.Check(t, got)
					checkHeader(t, got, c.Rcode, true, edns)
					if !got.Authoritative || !got.RecursionDesired || got.Truncated {
						t.Errorf("AA %v RD %v TC %v, want AA RD and no TC", got.Authoritative, got.RecursionDesired, got.Truncated)
					}
					if got.Question[0] != m.Question[0] {
						t.Errorf("question %v, want %v", got.Question[0], m.Question[0])
					}
				}
			})
		}
	}
	if got := s.metric(t, "requests_total", "proto", "udp", "family", "1", "type", "A"); got != 4 {
		t.Errorf("requests_total udp A = %v, want 4", got)
	}
	// Counted once the reply is sent, so possibly after the client has it.
	s.waitMetric(t, 4, "responses_total", "rcode", "NXDOMAIN")
	s.waitMetric(t, 12, "request_duration_seconds")
}

// TestRejected covers queries the front end answers itself without the chain.
func TestRejected(t *testing.T) {
	z := newZone(t, "a.example. 60 IN A 10.0.0.1")
	s := start(t, frontend.Config{}, z)
	twoQ := query("a.example.", dns.TypeA)
	twoQ.Question = append(twoQ.Question, dns.Question{Name: "b.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	noQ := query("a.example.", dns.TypeA)
	noQ.Question = nil
	notify := new(dns.Msg).SetNotify("example.")
	update := new(dns.Msg).SetUpdate("example.")
	chaos := query("version.bind.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	badvers := withEDNS(query("a.example.", dns.TypeA), 1232, true)
	badvers.IsEdns0().SetVersion(1)
	twoOpt := withEDNS(query("a.example.", dns.TypeA), 1232, false)
	twoOpt.Extra = append(twoOpt.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 512}})

	for _, c := range []struct {
		name     string
		network  string
		m        *dns.Msg
		rcode    int
		question bool
		opt      bool
	}{
		{"no question", "udp", noQ, dns.RcodeFormatError, false, false},
		{"two questions", "udp", twoQ, dns.RcodeFormatError, false, false},
		{"two questions tcp", "tcp", twoQ, dns.RcodeFormatError, false, false},
		{"notify", "udp", notify, dns.RcodeNotImplemented, true, false},
		{"update", "tcp", update, dns.RcodeNotImplemented, true, false},
		{"chaos", "udp", chaos, dns.RcodeRefused, true, false},
		{"badvers", "udp", badvers, dns.RcodeBadVers, true, true},
		{"two OPT", "udp", twoOpt, dns.RcodeFormatError, true, true},
		{"axfr udp", "udp", query("example.", dns.TypeAXFR), dns.RcodeRefused, true, false},
		{"ixfr udp", "udp", query("example.", dns.TypeIXFR), dns.RcodeRefused, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, _ := exchange(t, c.network, s.addr, c.m)
			checkHeader(t, got, c.rcode, c.question, c.opt)
			if len(got.Answer)+len(got.Ns) != 0 || len(got.Extra) > 1 {
				t.Errorf("reply has records:\n%v", got)
			}
			if got.Opcode != c.m.Opcode {
				t.Errorf("opcode %d, want %d", got.Opcode, c.m.Opcode)
			}
			if c.question && got.Question[0] != c.m.Question[0] {
				t.Errorf("question %v, want %v", got.Question[0], c.m.Question[0])
			}
			if o := got.IsEdns0(); c.opt && (o.UDPSize() != 1232 || o.Version() != 0 || o.Do() != c.m.IsEdns0().Do()) {
				t.Errorf("OPT %v, want size 1232, version 0, DO echoed", o)
			}
		})
	}
	if n := z.calls.Load(); n != 0 {
		t.Errorf("handler called %d times for rejected queries", n)
	}
}

func TestAXFROverTCPReachesChain(t *testing.T) {
	// Several messages per query are allowed over TCP.
	h := resolver.HandlerFunc{N: "axfr", F: func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		soa := rrs(t, "example. 60 IN SOA ns. host. 1 2 3 4 5")[0]
		for _, ans := range [][]dns.RR{{soa}, rrs(t, "a.example. 60 IN A 10.0.0.1"), {soa}} {
			m := new(dns.Msg).SetReply(r)
			m.Answer = ans
			if err := w.WriteMsg(m); err != nil {
				return dns.RcodeServerFailure, err
			}
		}
		return dns.RcodeSuccess, nil
	}}
	s := start(t, frontend.Config{}, h)
	tr := &dns.Transfer{}
	env, err := tr.In(query("example.", dns.TypeAXFR), s.addr)
	if err != nil {
		t.Fatalf("AXFR: %v", err)
	}
	var n int
	for e := range env {
		if e.Error != nil {
			t.Fatalf("AXFR envelope: %v", e.Error)
		}
		n += len(e.RR)
	}
	if n != 3 {
		t.Fatalf("AXFR got %d records, want 3", n)
	}
}

func TestANY(t *testing.T) {
	z := newZone(t, "a.example. 60 IN A 10.0.0.1")
	s := start(t, frontend.Config{}, z)
	for _, network := range []string{"udp", "tcp"} {
		for _, edns := range []bool{false, true} {
			m := query("a.example.", dns.TypeANY)
			if edns {
				withEDNS(m, 1232, true)
			}
			got, _ := exchange(t, network, s.addr, m)
			resolvertest.Case{Qname: "a.example.", Qtype: dns.TypeANY, Answer: []string{
				`a.example. 8482 IN HINFO "RFC8482" ""`,
			}}.Check(t, got)
			checkHeader(t, got, dns.RcodeSuccess, true, edns)
		}
	}
	if n := z.calls.Load(); n != 0 {
		t.Errorf("handler called %d times for ANY", n)
	}
}

func TestTruncation(t *testing.T) {
	var zone []string
	for i := range 100 {
		zone = append(zone, fmt.Sprintf("big.example. 60 IN A 10.0.%d.%d", i/250, i%250+1))
	}
	z := newZone(t, zone...)
	s := start(t, frontend.Config{}, z)
	want := rrs(t, zone...)
	for _, c := range []struct {
		name    string
		network string
		size    uint16 // 0: no EDNS
		limit   int
		full    bool
	}{
		{"udp no edns", "udp", 0, 512, false},
		{"udp edns 1232", "udp", 1232, 1232, false},
		{"udp edns 100 counts as 512", "udp", 100, 512, false},
		{"udp edns 4096", "udp", 4096, 4096, true},
		{"tcp", "tcp", 0, 65535, true},
		{"tcp edns 512", "tcp", 512, 65535, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := query("big.example.", dns.TypeA)
			if c.size > 0 {
				withEDNS(m, c.size, false)
			}
			got, n := exchange(t, c.network, s.addr, m)
			if n > c.limit {
				t.Errorf("reply %d bytes, limit %d", n, c.limit)
			}
			checkHeader(t, got, dns.RcodeSuccess, true, c.size > 0)
			if got.Truncated == c.full {
				t.Errorf("TC %v, want %v", got.Truncated, !c.full)
			}
			if c.full && len(got.Answer) != 100 {
				t.Errorf("%d answers, want 100", len(got.Answer))
			}
			if !c.full && (len(got.Answer) == 0 || len(got.Answer) >= 100) {
				t.Errorf("%d answers, want some but not all", len(got.Answer))
			}
			for i, rr := range got.Answer { // whole records, in order
				if rr.String() != want[i].String() {
					t.Fatalf("answer %d: %v, want %v", i, rr, want[i])
				}
			}
		})
	}
}

func TestOPTOwnership(t *testing.T) {
	// The handler adds its own OPT (as a forwarded upstream reply would);
	// the client sees only ours.
	h := resolver.HandlerFunc{N: "opt", F: func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		m := new(dns.Msg).SetReply(r)
		m.Answer = rrs(t, "a.example. 60 IN A 10.0.0.1")
		m.Extra = rrs(t, "ns.example. 60 IN A 10.0.0.53")
		m.SetEdns0(4096, false)
		m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "beef"}}
		return dns.RcodeSuccess, w.WriteMsg(m)
	}}
	s := start(t, frontend.Config{}, h)
	for _, c := range []struct {
		name string
		m    *dns.Msg
	}{
		{"no edns", query("a.example.", dns.TypeA)},
		{"edns do", withEDNS(query("a.example.", dns.TypeA), 4096, true)},
		{"edns no do", withEDNS(query("a.example.", dns.TypeA), 1400, false)},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, _ := exchange(t, "udp", s.addr, c.m)
			resolvertest.Case{Qname: "a.example.", Qtype: dns.TypeA,
				Answer: []string{"a.example. 60 IN A 10.0.0.1"},
				Extra:  []string{"ns.example. 60 IN A 10.0.0.53"},
			}.Check(t, got)
			var opts []*dns.OPT
			for _, rr := range got.Extra {
				if o, ok := rr.(*dns.OPT); ok {
					opts = append(opts, o)
				}
			}
			co := c.m.IsEdns0()
			if co == nil {
				if len(opts) != 0 {
					t.Fatalf("client without EDNS got %d OPT records", len(opts))
				}
				return
			}
			if len(opts) != 1 {
				t.Fatalf("%d OPT records, want 1", len(opts))
			}
			if o := opts[0]; o.UDPSize() != 1232 || o.Do() != co.Do() || len(o.Option) != 0 || o.Version() != 0 {
				t.Errorf("OPT %v, want size 1232, DO %v, no options", o, co.Do())
			}
		})
	}
}

func TestHandlerRcodes(t *testing.T) {
	// The handler returns the rcode named by the first label, writing nothing.
	h := resolver.HandlerFunc{N: "rcode", F: func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		label := dns.SplitDomainName(r.Question[0].Name)[0]
		return dns.StringToRcode[label], errors.New("stage error")
	}}
	s := start(t, frontend.Config{}, h)
	for _, c := range []struct {
		label string
		want  int
	}{
		{"SERVFAIL", dns.RcodeServerFailure},
		{"REFUSED", dns.RcodeRefused},
		{"FORMERR", dns.RcodeFormatError},
		{"NOTIMP", dns.RcodeNotImplemented},
		{"NOERROR", dns.RcodeServerFailure}, // "written" but nothing written: a stage bug
		{"NXDOMAIN", dns.RcodeServerFailure},
	} {
		for _, edns := range []bool{false, true} {
			m := query(c.label+".example.", dns.TypeA)
			if edns {
				withEDNS(m, 1232, false)
			}
			got, _ := exchange(t, "udp", s.addr, m)
			checkHeader(t, got, c.want, true, edns)
			if len(got.Answer)+len(got.Ns) != 0 {
				t.Errorf("%s: records in reply:\n%v", c.label, got)
			}
		}
	}
}

func TestPanicBecomesSERVFAIL(t *testing.T) {
	z := newZone(t, "ok.example. 60 IN A 10.0.0.1")
	h := resolver.HandlerFunc{N: "boom", F: func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		if r.Question[0].Name == "boom.example." {
			panic("stage bug")
		}
		return z.ServeDNS(ctx, w, r)
	}}
	s := start(t, frontend.Config{}, h)
	for _, network := range []string{"udp", "tcp"} {
		got, _ := exchange(t, network, s.addr, query("boom.example.", dns.TypeA))
		checkHeader(t, got, dns.RcodeServerFailure, true, false)
		got, _ = exchange(t, network, s.addr, query("ok.example.", dns.TypeA))
		resolvertest.Case{Qname: "ok.example.", Qtype: dns.TypeA, Answer: []string{"ok.example. 60 IN A 10.0.0.1"}}.Check(t, got)
	}
	if got := s.metric(t, "panics_total"); got != 2 {
		t.Errorf("panics_total = %v, want 2", got)
	}
}

func TestNew(t *testing.T) {
	h := newZone(t)
	for _, c := range []struct {
		name  string
		cfg   frontend.Config
		field string
	}{
		{"no listen", frontend.Config{}, "listen"},
		{"host name", frontend.Config{Listen: []string{"localhost:53"}}, "listen[0]"},
		{"no port", frontend.Config{Listen: []string{"127.0.0.1:0", "127.0.0.1"}}, "listen[1]"},
		{"bad port", frontend.Config{Listen: []string{"127.0.0.1:70000"}}, "listen[0]"},
		{"negative", frontend.Config{Listen: []string{":53"}, TCPPipeline: -1}, "tcp_pipeline"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := frontend.New(c.cfg, h, frontend.Options{})
			var fe *resolver.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, frontend.ErrConfig) {
				t.Fatalf("err %v, want a FieldError on %s wrapping ErrConfig", err, c.field)
			}
		})
	}
	if _, err := frontend.New(frontend.Config{Listen: []string{":0"}}, nil, frontend.Options{}); !errors.Is(err, frontend.ErrConfig) {
		t.Fatalf("nil handler: err %v, want ErrConfig", err)
	}
	for _, ok := range []string{":0", "0.0.0.0:53", "[::]:53", "[fe80::1%lo]:53"} {
		if _, err := frontend.New(frontend.Config{Listen: []string{ok}}, h, frontend.Options{}); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}
