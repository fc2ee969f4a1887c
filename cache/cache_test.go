package cache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

const soa = "example. 600 IN SOA ns.example. hostmaster.example. 1 7200 1800 86400 60"

func TestHitAgesTTL(t *testing.T) {
	e := newEnv(t, Default(), answering(dns.RcodeSuccess, []string{
		"www.example. 300 IN CNAME web.example.",
		"web.example. 600 IN A 10.0.0.1",
	}, nil))
	first := e.query("www.example.", dns.TypeA)
	if !first.Authoritative {
		t.Fatal("miss: the reply of the next stage should pass through unchanged (AA set)")
	}
	e.clock.Advance(100 * time.Second)
	r := q("www.example.", dns.TypeA)
	got, _, err := e.ask(r)
	if err != nil {
		t.Fatalf("hit: %v", err)
	}
	resolvertest.Case{Qname: "www.example.", Qtype: dns.TypeA, CheckAA: true, AA: false, Answer: []string{
		"www.example. 200 IN CNAME web.example.",
		"web.example. 200 IN A 10.0.0.1",
	}}.Check(t, got)
	if got.Id != r.Id || !got.Response || !got.RecursionDesired {
		t.Errorf("hit header: id %d (want %d) qr %v rd %v", got.Id, r.Id, got.Response, got.RecursionDesired)
	}
	if n := e.next.total(); n != 1 {
		t.Errorf("next called %d times, want 1", n)
	}
	if v := e.metric("hits_total", "type", "success"); v != 1 {
		t.Errorf("hits_total{success} = %v, want 1", v)
	}
	if v := e.metric("misses_total"); v != 1 {
		t.Errorf("misses_total = %v, want 1", v)
	}
	// The stored message is never handed out: changing a hit's reply does
	// not change the next one.
	got.Answer[1].(*dns.A).Hdr.Ttl = 9999
	got.Answer[1].(*dns.A).Hdr.Name = "evil."
	again := e.query("www.example.", dns.TypeA)
	if h := again.Answer[1].Header(); h.Ttl != 200 || h.Name != "web.example." {
		t.Errorf("a mutated hit leaked into the cache: %s", again.Answer[1])
	}
}

func TestTTLCapsAndFloor(t *testing.T) {
	cfg := Default()
	cfg.MinTTL, cfg.MaxTTL, cfg.MaxNegativeTTL = 5*time.Second, time.Hour, 30*time.Minute
	for _, tc := range []struct {
		name    string
		rcode   int
		answer  []string
		ns      []string
		wantTTL uint32 // TTL on the first hit; 0: not cached
	}{
		{"below floor", dns.RcodeSuccess, []string{"a.example. 1 IN A 10.0.0.1"}, nil, 5},
		{"within", dns.RcodeSuccess, []string{"a.example. 60 IN A 10.0.0.1"}, nil, 60},
		{"above cap", dns.RcodeSuccess, []string{"a.example. 86400 IN A 10.0.0.1"}, nil, 3600},
		{"smallest record wins", dns.RcodeSuccess, []string{"a.example. 900 IN A 10.0.0.1", "a.example. 90 IN A 10.0.0.2"}, nil, 90},
		{"zero means do not cache", dns.RcodeSuccess, []string{"a.example. 0 IN A 10.0.0.1"}, nil, 0},
		{"negative above cap", dns.RcodeNameError, nil, []string{"example. 86400 IN SOA ns. h. 1 2 3 4 86400"}, 1800},
		{"negative below floor", dns.RcodeNameError, nil, []string{"example. 2 IN SOA ns. h. 1 2 3 4 2"}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, cfg, answering(tc.rcode, tc.answer, tc.ns))
			e.query("a.example.", dns.TypeA)
			got := e.query("a.example.", dns.TypeA)
			if tc.wantTTL == 0 {
				if n := e.next.total(); n != 2 {
					t.Fatalf("next called %d times, want 2 (not cached)", n)
				}
				return
			}
			for _, rr := range append(got.Answer, got.Ns...) {
				if rr.Header().Ttl != tc.wantTTL {
					t.Errorf("hit: %s, want TTL %d", rr, tc.wantTTL)
				}
			}
			e.clock.Advance(time.Duration(tc.wantTTL)*time.Second - time.Millisecond)
			e.query("a.example.", dns.TypeA)
			if n := e.next.total(); n != 1 {
				t.Fatalf("just before expiry: next called %d times, want 1", n)
			}
			e.clock.Advance(time.Millisecond)
			e.query("a.example.", dns.TypeA)
			if n := e.next.total(); n != 2 {
				t.Fatalf("at expiry: next called %d times, want 2", n)
			}
		})
	}
}

func TestNegative(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rcode int
	}{
		{"NXDOMAIN", dns.RcodeNameError},
		{"NODATA", dns.RcodeSuccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Default(), answering(tc.rcode, nil, []string{soa}))
			e.query("nope.example.", dns.TypeA)
			e.clock.Advance(10 * time.Second)
			got := e.query("Nope.Example.", dns.TypeA)
			// min(SOA TTL 600, SOA MINIMUM 60) = 60, aged by 10 s.
			resolvertest.Case{Qname: "nope.example.", Qtype: dns.TypeA, Rcode: tc.rcode, CheckAA: true,
				Ns: []string{"example. 50 IN SOA ns.example. hostmaster.example. 1 7200 1800 86400 60"},
			}.Check(t, got)
			if got.Question[0].Name != "Nope.Example." {
				t.Errorf("question %q, want the client's spelling", got.Question[0].Name)
			}
			if v := e.metric("hits_total", "type", "denial"); v != 1 {
				t.Errorf("hits_total{denial} = %v, want 1", v)
			}
			if v := e.metric("entries", "type", "negative"); v != 1 {
				t.Errorf("entries{negative} = %v, want 1", v)
			}
			e.clock.Advance(50 * time.Second)
			e.query("nope.example.", dns.TypeA)
			if n := e.next.total(); n != 2 {
				t.Errorf("after the negative TTL: next called %d times, want 2", n)
			}
		})
	}
}

func TestServfail(t *testing.T) {
	for _, ttl := range []time.Duration{5 * time.Second, 0} {
		t.Run(ttl.String(), func(t *testing.T) {
			cfg := Default()
			cfg.ServfailTTL = ttl
			e := newEnv(t, cfg, failing(dns.RcodeServerFailure))
			for i := range 2 {
				m, rcode, err := e.ask(q("down.example.", dns.TypeA))
				if m != nil || rcode != dns.RcodeServerFailure {
					t.Fatalf("query %d: wrote %v, rcode %s; want nothing written and SERVFAIL", i, m, dns.RcodeToString[rcode])
				}
				if i == 1 && ttl > 0 && !errors.Is(err, ErrCachedFailure) {
					t.Errorf("cached SERVFAIL: err %v, want ErrCachedFailure", err)
				}
			}
			want := 1
			if ttl == 0 {
				want = 2
			}
			if n := e.next.total(); n != want {
				t.Fatalf("next called %d times, want %d", n, want)
			}
			e.clock.Advance(ttl)
			e.ask(q("down.example.", dns.TypeA))
			if n := e.next.total(); n != want+1 {
				t.Errorf("after servfailTTL: next called %d times, want %d", n, want+1)
			}
			if ttl > 0 {
				if v := e.metric("hits_total", "type", "servfail"); v != 1 {
					t.Errorf("hits_total{servfail} = %v, want 1", v)
				}
			}
		})
	}
}

func TestNotCached(t *testing.T) {
	a := []string{"a.example. 300 IN A 10.0.0.1"}
	for _, tc := range []struct {
		name string
		next *fakeNext
	}{
		{"truncated", newFake(func(_ context.Context, r *dns.Msg) (*dns.Msg, int, error) {
			m := build(r, dns.RcodeSuccess, a, nil)
			m.Truncated = true
			return m, dns.RcodeSuccess, nil
		})},
		{"REFUSED", failing(dns.RcodeRefused)},
		{"FORMERR", failing(dns.RcodeFormatError)},
		{"NOTIMP", failing(dns.RcodeNotImplemented)},
		{"REFUSED written", answering(dns.RcodeRefused, nil, nil)},
		{"YXDOMAIN", answering(dns.RcodeYXDomain, nil, nil)},
		{"negative without SOA", answering(dns.RcodeNameError, nil, nil)},
		{"question mismatch", newFake(func(_ context.Context, r *dns.Msg) (*dns.Msg, int, error) {
			m := build(r, dns.RcodeSuccess, a, nil)
			m.Question[0].Name = "b.example."
			return m, dns.RcodeSuccess, nil
		})},
		{"no question", newFake(func(_ context.Context, r *dns.Msg) (*dns.Msg, int, error) {
			m := build(r, dns.RcodeSuccess, a, nil)
			m.Question = nil
			return m, dns.RcodeSuccess, nil
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Default(), tc.next)
			for range 2 {
				e.ask(q("a.example.", dns.TypeA))
			}
			if n := e.next.total(); n != 2 {
				t.Errorf("next called %d times, want 2", n)
			}
			if n := e.c.Len(); n != 0 {
				t.Errorf("Len = %d, want 0", n)
			}
		})
	}
}

func TestKey(t *testing.T) {
	e := newEnv(t, Default(), newFake(func(_ context.Context, r *dns.Msg) (*dns.Msg, int, error) {
		// The answer depends on everything in the key, so a wrong hit shows.
		name := r.Question[0].Name
		tag := dns.TypeToString[r.Question[0].Qtype] + "/" + dns.ClassToString[r.Question[0].Qclass]
		if doBit(r) {
			tag += "/do"
		}
		if r.CheckingDisabled {
			tag += "/cd"
		}
		m := build(r, dns.RcodeSuccess, nil, nil)
		m.Answer = rrs([]string{name + " 300 IN TXT " + tag})
		return m, dns.RcodeSuccess, nil
	}))
	variants := map[string]func() *dns.Msg{
		"A":  func() *dns.Msg { return q("k.example.", dns.TypeA) },
		"MX": func() *dns.Msg { return q("k.example.", dns.TypeMX) },
		"CH": func() *dns.Msg { m := q("k.example.", dns.TypeA); m.Question[0].Qclass = dns.ClassCHAOS; return m },
		"DO": func() *dns.Msg { m := q("k.example.", dns.TypeA); m.SetEdns0(1232, true); return m },
		"CD": func() *dns.Msg { m := q("k.example.", dns.TypeA); m.CheckingDisabled = true; return m },
	}
	want := map[string]string{}
	for name, mk := range variants {
		m, _, _ := e.ask(mk())
		want[name] = m.Answer[0].(*dns.TXT).Txt[0]
	}
	if n := e.next.total(); n != len(variants) {
		t.Fatalf("next called %d times for %d distinct keys", n, len(variants))
	}
	for name, mk := range variants {
		r := mk()
		r.Question[0].Name = "K.eXample." // same key, client's own spelling
		m, _, _ := e.ask(r)
		if got := m.Answer[0].(*dns.TXT).Txt[0]; got != want[name] {
			t.Errorf("%s: hit answered %q, want %q", name, got, want[name])
		}
		if m.Question[0].Name != "K.eXample." || m.Answer[0].Header().Name != "K.eXample." {
			t.Errorf("%s: question %q owner %q, want the client's spelling K.eXample.", name, m.Question[0].Name, m.Answer[0].Header().Name)
		}
	}
	if n := e.next.total(); n != len(variants) {
		t.Errorf("next called %d times after hits, want %d", n, len(variants))
	}
}

func TestAnswerKeepsOtherNames(t *testing.T) {
	e := newEnv(t, Default(), answering(dns.RcodeSuccess, []string{
		"www.example. 300 IN CNAME Web.Example.",
		"Web.Example. 300 IN A 10.0.0.1",
	}, nil))
	e.query("www.example.", dns.TypeA)
	got := e.query("WWW.example.", dns.TypeA)
	if a, b := got.Answer[0].Header().Name, got.Answer[1].Header().Name; a != "WWW.example." || b != "Web.Example." {
		t.Errorf("owners %q %q: want only the qname respelled", a, b)
	}
}

func TestSkipZones(t *testing.T) {
	for _, tc := range []struct {
		name        string
		clusterZone bool
		qname       string
		wantCalls   int
	}{
		{"cluster name bypasses", false, "web.default.svc.Cluster.Local.", 2},
		{"zone apex bypasses", false, "cluster.local.", 2},
		{"clusterZone caches", true, "web.default.svc.cluster.local.", 1},
		{"outside the zone", false, "notcluster.local.", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			cfg.ClusterZone = tc.clusterZone
			e := newEnv(t, cfg, answering(dns.RcodeSuccess, []string{tc.qname + " 5 IN A 10.0.0.1"}, nil), "Cluster.Local")
			e.query(tc.qname, dns.TypeA)
			e.query(tc.qname, dns.TypeA)
			if n := e.next.total(); n != tc.wantCalls {
				t.Errorf("next called %d times, want %d", n, tc.wantCalls)
			}
			if tc.wantCalls == 2 && e.metric("misses_total") != 0 {
				t.Error("a bypassed query was counted as a miss")
			}
		})
	}
}

func TestEviction(t *testing.T) {
	cfg := Default()
	cfg.Size = 2
	e := newEnv(t, cfg, newFake(func(_ context.Context, r *dns.Msg) (*dns.Msg, int, error) {
		return build(r, dns.RcodeSuccess, []string{r.Question[0].Name + " 300 IN A 10.0.0.1"}, nil), 0, nil
	}))
	e.query("a.example.", dns.TypeA)
	e.query("b.example.", dns.TypeA)
	e.query("a.example.", dns.TypeA) // a is now the most recently used
	e.query("c.example.", dns.TypeA) // evicts b
	if n := e.c.Len(); n != 2 {
		t.Errorf("Len = %d, want 2", n)
	}
	if v := e.metric("evictions_total"); v != 1 {
		t.Errorf("evictions_total = %v, want 1", v)
	}
	if v := e.metric("entries", "type", "positive"); v != 2 {
		t.Errorf("entries{positive} = %v, want 2", v)
	}
	e.query("a.example.", dns.TypeA)
	if n := e.next.total(); n != 3 {
		t.Errorf("a was evicted: next called %d times, want 3", n)
	}
	e.query("b.example.", dns.TypeA)
	if n := e.next.total(); n != 4 {
		t.Errorf("b was kept: next called %d times, want 4", n)
	}
}

func TestBypassesNonQueries(t *testing.T) {
	e := newEnv(t, Default(), answering(dns.RcodeSuccess, []string{"example. 300 IN A 10.0.0.1"}, nil))
	for range 2 {
		e.ask(q("example.", dns.TypeAXFR))
		n := q("example.", dns.TypeA)
		n.Opcode = dns.OpcodeNotify
		e.ask(n)
	}
	if n := e.next.total(); n != 4 || e.c.Len() != 0 {
		t.Errorf("next called %d times, Len %d; want 4 and 0", n, e.c.Len())
	}
}

func TestADBit(t *testing.T) {
	e := newEnv(t, Default(), newFake(func(_ context.Context, r *dns.Msg) (*dns.Msg, int, error) {
		m := build(r, dns.RcodeSuccess, []string{"s.example. 300 IN A 10.0.0.1"}, nil)
		m.AuthenticatedData = true
		return m, dns.RcodeSuccess, nil
	}))
	withAD := q("s.example.", dns.TypeA)
	withAD.AuthenticatedData = true
	e.ask(withAD)
	if m := e.query("s.example.", dns.TypeA); m.AuthenticatedData {
		t.Error("AD set for a client that asked with neither AD nor DO")
	}
	if m, _, _ := e.ask(withAD); !m.AuthenticatedData {
		t.Error("AD cleared for a client that asked with AD")
	}
}

func TestCancelledQueryNotCached(t *testing.T) {
	e := newEnv(t, Default(), newFake(func(ctx context.Context, _ *dns.Msg) (*dns.Msg, int, error) {
		<-ctx.Done()
		return nil, dns.RcodeServerFailure, ctx.Err()
	}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // shutdown or reload: says nothing about the name
	e.h.ServeDNS(ctx, resolver.NewRecorder(nil), q("slow.example.", dns.TypeA))
	if n := e.c.Len(); n != 0 {
		t.Fatalf("a cancelled query's SERVFAIL was cached (Len %d)", n)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	e.h.ServeDNS(ctx, resolver.NewRecorder(nil), q("slow.example.", dns.TypeA))
	if n := e.c.Len(); n != 1 {
		t.Fatalf("a timed-out query's SERVFAIL was not cached (Len %d)", n)
	}
}
