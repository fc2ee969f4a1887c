package server

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/clusterdns/clusterdns/kubeindex/clientsetapi"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// relay is a resolver that forwards every query to target (SERVFAIL while
// it has none) and counts the names it saw: pointed at a clusterdns that
// uses it as upstream, it closes a forwarding loop.
type relay struct {
	*resolvertest.Server
	target atomic.Pointer[string]
	mu     sync.Mutex
	seen   map[string]int // guarded by mu
}

func startRelay(t *testing.T) *relay {
	t.Helper()
	r := &relay{seen: map[string]int{}}
	r.Server = resolvertest.StartServer(t, r)
	return r
}

func (r *relay) to(addr string) { r.target.Store(&addr) }

func (r *relay) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	r.mu.Lock()
	r.seen[strings.ToLower(q.Question[0].Name)]++
	r.mu.Unlock()
	if p := r.target.Load(); p != nil {
		c := &dns.Client{Net: "udp", Timeout: time.Second}
		if m, _, err := c.Exchange(q, *p); err == nil {
			_ = w.WriteMsg(m)
			return
		}
	}
	m := new(dns.Msg)
	_ = w.WriteMsg(m.SetRcode(q, dns.RcodeServerFailure))
}

// maxSeen returns the highest count of one name other than the loop
// probes, and of one probe name.
func (r *relay) maxSeen() (name, probe int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for n, c := range r.seen {
		if dns.IsSubDomain(loopZone, n) {
			probe = max(probe, c)
		} else {
			name = max(name, c)
		}
	}
	return name, probe
}

func (r *relay) count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[name]
}

func readyBody(t *testing.T, s *Server) (int, string) {
	t.Helper()
	return httpGet(t, "http://"+s.HTTPAddrs()["ready"].String()+"/ready")
}

func TestForwardingLoopThroughRelay(t *testing.T) {
	up := startStub(t, "example.", "www.example. 300 IN A 192.0.2.1", "ok.example. 300 IN A 192.0.2.2")
	rl := startRelay(t)
	cfg := testConfig(t, rl.Addr, "  loopCheck: 100ms\nkubernetes: {zone: cluster.local}\n")
	s, logs := startServer(t, cfg, Options{KubeClient: clientsetapi.New(fake.NewClientset(kubeObjects()...))})
	addr := dnsAddr(t, s)
	rl.to(addr) // the upstream now forwards back to us

	want := "forward: forwarding loop through " + rl.Addr + "\n"
	eventually(t, "/ready naming the loop", func() bool { code, body := readyBody(t, s); return code == 503 && body == want })
	if !strings.Contains(logs.String(), `level=ERROR msg="forwarding loop detected`) || !strings.Contains(logs.String(), "upstream="+rl.Addr) {
		t.Errorf("no error log naming the upstream:\n%s", logs)
	}

	// Forwarded names: SERVFAIL at once, nothing sent into the loop.
	resolvertest.Case{Qname: "www.example.", Qtype: dns.TypeA, Rcode: dns.RcodeServerFailure}.
		Check(t, resolvertest.Exchange(t, "udp", addr, resolvertest.Query("www.example.", dns.TypeA)))
	if n := rl.count("www.example."); n != 0 {
		t.Errorf("the relay saw www.example. %d times: a query was forwarded into the loop", n)
	}
	// The cluster zone is still answered.
	resolvertest.Case{Qname: "web.default.svc.cluster.local.", Qtype: dns.TypeA, Answer: []string{"web.default.svc.cluster.local. * IN A 10.0.0.10"}}.
		Check(t, resolvertest.Exchange(t, "udp", addr, resolvertest.Query("web.default.svc.cluster.local.", dns.TypeA)))
	// Probes went around once each: no amplification.
	time.Sleep(300 * time.Millisecond)
	if _, probe := rl.maxSeen(); probe != 1 {
		t.Errorf("a probe passed the relay %d times, want 1", probe)
	}

	rl.to(up.Addr) // the loop is fixed
	eventually(t, "/ready 200 once the loop is gone", func() bool { code, _ := readyBody(t, s); return code == 200 })
	// (www.example.'s SERVFAIL stays cached for servfailTTL)
	resolvertest.Case{Qname: "ok.example.", Qtype: dns.TypeA, Answer: []string{"ok.example. 300 IN A 192.0.2.2"}}.
		Check(t, resolvertest.Exchange(t, "udp", addr, resolvertest.Query("ok.example.", dns.TypeA)))
	if !strings.Contains(logs.String(), "forwarding loop gone") {
		t.Errorf("recovery not logged:\n%s", logs)
	}
}

// TestForwardingLoopBetweenTwoServers: a and b forward to each other
// (through relays, so each can start before the other's port is known).
func TestForwardingLoopBetweenTwoServers(t *testing.T) {
	toB, toA := startRelay(t), startRelay(t)
	a, _ := startServer(t, testConfig(t, toB.Addr, "  loopCheck: 100ms\ncache: {enabled: false}\n"), Options{})
	b, _ := startServer(t, testConfig(t, toA.Addr, "  loopCheck: 100ms\ncache: {enabled: false}\n"), Options{})
	toB.to(dnsAddr(t, b))
	toA.to(dnsAddr(t, a))

	eventually(t, "a loop reported by a or b", func() bool {
		codeA, bodyA := readyBody(t, a)
		codeB, bodyB := readyBody(t, b)
		return codeA == 503 && bodyA == "forward: forwarding loop through "+toB.Addr+"\n" ||
			codeB == 503 && bodyB == "forward: forwarding loop through "+toA.Addr+"\n"
	})
	// Once one side stops forwarding, a query goes around at most once.
	for i, s := range []*Server{a, b} {
		name := []string{"from-a.example.", "from-b.example."}[i]
		resolvertest.Case{Qname: name, Qtype: dns.TypeA, Rcode: dns.RcodeServerFailure}.
			Check(t, resolvertest.Exchange(t, "udp", dnsAddr(t, s), resolvertest.Query(name, dns.TypeA)))
		if n, m := toA.count(name), toB.count(name); n > 1 || m > 1 {
			t.Errorf("%s passed the relays %d and %d times, want at most once", name, n, m)
		}
	}
}

// TestReloadChecksLoops: a reload probes for loops at once, even when the
// forward stage is kept: where an upstream forwards may have changed.
func TestReloadChecksLoops(t *testing.T) {
	up := startStub(t, "example.", "www.example. 300 IN A 192.0.2.1")
	rl := startRelay(t)
	rl.to(up.Addr)
	f := newReloadFixture(t, Options{})
	text := configText(rl.Addr, "  loopCheck: 1h\n")
	f.write(t, text)
	if err := f.s.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first probe through the relay", func() bool { _, probe := rl.maxSeen(); return probe == 1 })
	if ok, why := f.s.Ready(); !ok {
		t.Fatalf("Ready before the loop: %v", why)
	}
	rl.to(f.addr) // the upstream now forwards back to us
	// the same file: nothing is rebuilt, the probe round runs all the same
	if err := f.s.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the loop found after the reload", func() bool {
		ok, why := f.s.Ready()
		return !ok && len(why) == 1 && why[0] == "forward: forwarding loop through "+rl.Addr
	})
}
