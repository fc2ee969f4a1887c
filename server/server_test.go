package server

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

func TestForwardThroughCache(t *testing.T) {
	up := startStub(t, "example.",
		"www.example. 300 IN A 192.0.2.1",
		"www.example. 300 IN AAAA 2001:db8::1",
	)
	s, _ := startServer(t, testConfig(t, up.Addr, ""), Options{})
	addr := dnsAddr(t, s)

	q := resolvertest.Query("www.example.", dns.TypeA)
	r := resolvertest.Exchange(t, "udp", addr, q)
	resolvertest.Case{Qname: "www.example.", Qtype: dns.TypeA, Answer: []string{"www.example. 300 IN A 192.0.2.1"}}.Check(t, r)
	if r.Id != q.Id || !r.Response || !r.RecursionAvailable || !r.RecursionDesired || r.Truncated {
		t.Errorf("header: id %d (sent %d) qr %v ra %v rd %v tc %v", r.Id, q.Id, r.Response, r.RecursionAvailable, r.RecursionDesired, r.Truncated)
	}
	if len(r.Question) != 1 || r.Question[0] != q.Question[0] {
		t.Errorf("question %v, want %v", r.Question, q.Question)
	}

	// AAAA over TCP reaches the stub once; A over TCP is a cache hit.
	resolvertest.Case{Qname: "www.example.", Qtype: dns.TypeAAAA, Answer: []string{"www.example. 300 IN AAAA 2001:db8::1"}}.
		Check(t, resolvertest.Exchange(t, "tcp", addr, resolvertest.Query("www.example.", dns.TypeAAAA)))
	resolvertest.Case{Qname: "www.example.", Qtype: dns.TypeA, Answer: []string{"www.example. * IN A 192.0.2.1"}}.
		Check(t, resolvertest.Exchange(t, "tcp", addr, q))
	if n := up.Queries.Load(); n != 2 {
		t.Fatalf("stub saw %d queries, want 2 (A and AAAA once each)", n)
	}

	time.Sleep(1100 * time.Millisecond) // let the entry age by at least a second
	r = resolvertest.Exchange(t, "udp", addr, q)
	resolvertest.Case{Qname: "www.example.", Qtype: dns.TypeA, Answer: []string{"www.example. * IN A 192.0.2.1"}}.Check(t, r)
	if ttl := r.Answer[0].Header().Ttl; ttl >= 300 || ttl < 290 {
		t.Errorf("cached TTL %d, want aged below 300", ttl)
	}
	if n := up.Queries.Load(); n != 2 {
		t.Errorf("stub saw %d queries, want the hit served from the cache", n)
	}
}

func TestNegativeCaching(t *testing.T) {
	up := startStub(t, "example.", "www.example. 300 IN A 192.0.2.1")
	s, _ := startServer(t, testConfig(t, up.Addr, ""), Options{})
	addr := dnsAddr(t, s)
	soa := "example. * IN SOA ns.example. hostmaster.example. 1 7200 1800 86400 30"

	for _, c := range []resolvertest.Case{
		{Name: "NXDOMAIN", Qname: "nope.example.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []string{soa}},
		{Name: "NODATA", Qname: "www.example.", Qtype: dns.TypeTXT, Ns: []string{soa}},
	} {
		before := up.Queries.Load()
		c.Check(t, resolvertest.Exchange(t, "udp", addr, c.Msg()))
		r := resolvertest.Exchange(t, "udp", addr, c.Msg())
		c.Check(t, r)
		if n := up.Queries.Load() - before; n != 1 {
			t.Errorf("%s: stub saw %d queries, want 1 (the second from the cache)", c.Name, n)
		}
		// RFC 2308: the negative TTL is min(SOA TTL, SOA MINIMUM) = 30.
		if len(r.Ns) == 1 && r.Ns[0].Header().Ttl > 30 {
			t.Errorf("%s: cached SOA TTL %d, want at most 30", c.Name, r.Ns[0].Header().Ttl)
		}
	}
}

func TestStubDomainRouting(t *testing.T) {
	up := startStub(t, "example.", "www.example. 300 IN A 192.0.2.1")
	corp := startStub(t, "corp.example.", "host.corp.example. 60 IN A 10.1.1.1")
	s, _ := startServer(t, testConfig(t, up.Addr, "  zones: {\"corp.example.\": [\""+corp.Addr+"\"]}\n"), Options{})
	addr := dnsAddr(t, s)

	resolvertest.Case{Qname: "host.corp.example.", Qtype: dns.TypeA, Answer: []string{"host.corp.example. 60 IN A 10.1.1.1"}}.
		Check(t, resolvertest.Exchange(t, "udp", addr, resolvertest.Query("HOST.corp.example.", dns.TypeA)))
	resolvertest.Case{Qname: "www.example.", Qtype: dns.TypeA, Answer: []string{"www.example. 300 IN A 192.0.2.1"}}.
		Check(t, resolvertest.Exchange(t, "udp", addr, resolvertest.Query("www.example.", dns.TypeA)))
	if up.Queries.Load() != 1 || corp.Queries.Load() != 1 {
		t.Errorf("default stub saw %d, corp stub %d; want 1 each", up.Queries.Load(), corp.Queries.Load())
	}
}

func TestUpstreamDownAndRecovery(t *testing.T) {
	up := startStub(t, "example.", "www.example. 300 IN A 192.0.2.1")
	s, _ := startServer(t, testConfig(t, up.Addr, "cache: {enabled: false}\n"), Options{})
	addr := dnsAddr(t, s)
	q := resolvertest.Query("www.example.", dns.TypeA)

	up.Down.Store(true)
	r, err := exchange("udp", addr, q, 4*time.Second)
	if err != nil {
		t.Fatalf("upstream down: no reply within the query deadline: %v", err)
	}
	resolvertest.Case{Qname: "www.example.", Qtype: dns.TypeA, Rcode: dns.RcodeServerFailure}.Check(t, r)

	up.Down.Store(false)
	eventually(t, "an answer after the upstream came back", func() bool {
		r, err := exchange("udp", addr, q, 3*time.Second)
		return err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1
	})
}

func TestShutdownLameduck(t *testing.T) {
	up := startStub(t, "example.", "www.example. 300 IN A 192.0.2.1")
	cfg := testConfig(t, up.Addr, "lameduck: 1s\n")
	s, _ := startServer(t, cfg, Options{})
	addr := dnsAddr(t, s)
	ready := "http://" + s.HTTPAddrs()["ready"].String() + "/ready"
	if code, body := httpGet(t, ready); code != 200 || body != "OK\n" {
		t.Fatalf("/ready before shutdown: %d %q", code, body)
	}

	start := time.Now()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	checkLameduck(t, ready, addr)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("Shutdown returned after %s, before the 1s lameduck", d)
	}
	if _, err := exchange("udp", addr, resolvertest.Query("www.example.", dns.TypeA), 300*time.Millisecond); err == nil {
		t.Error("DNS still answers after Shutdown")
	}
}

// checkLameduck asserts that /ready reports lameduck while DNS still answers.
func checkLameduck(t *testing.T, ready, addr string) {
	t.Helper()
	eventually(t, "/ready 503", func() bool {
		code, body := httpGet(t, ready)
		return code == 503 && body == "lameduck\n"
	})
	resolvertest.Case{Qname: "www.example.", Qtype: dns.TypeA, Answer: []string{"www.example. * IN A 192.0.2.1"}}.
		Check(t, resolvertest.Exchange(t, "udp", addr, resolvertest.Query("www.example.", dns.TypeA)))
}

func TestRunSignals(t *testing.T) {
	up := startStub(t, "example.", "www.example. 300 IN A 192.0.2.1")
	s, logs := startServer(t, testConfig(t, up.Addr, "lameduck: 1s\n"), Options{})
	addr := dnsAddr(t, s)
	sig := make(chan os.Signal, 2)
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background(), sig) }()

	sig <- syscall.SIGHUP // no config file: nothing to reload, keeps running
	sig <- syscall.SIGTERM
	checkLameduck(t, "http://"+s.HTTPAddrs()["ready"].String()+"/ready", addr)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after SIGTERM")
	}
	if !strings.Contains(logs.String(), "no config file to reload") {
		t.Errorf("SIGHUP without a config file not logged:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "signal=terminated") {
		t.Errorf("log does not name the signal:\n%s", logs)
	}
}
