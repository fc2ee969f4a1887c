package kubeindex

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

type Case = resolvertest.Case

const (
	soa    = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5"
	soaV4  = "in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5"
	soaV6  = "ip6.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5"
	web    = "web.default.svc.cluster.local."
	db     = "db.default.svc.cluster.local."
	dual   = "dual.default.svc.cluster.local."
	v6only = "v6only.default.svc.cluster.local."
	NX     = dns.RcodeNameError
	SF     = dns.RcodeServerFailure
)

func nx(name string, qtype uint16) Case {
	return Case{Qname: name, Qtype: qtype, Rcode: NX, Ns: []string{soa}}
}

func noData(name string, qtype uint16) Case {
	return Case{Qname: name, Qtype: qtype, Ns: []string{soa}}
}

func passed(name string, qtype uint16) Case {
	return Case{Qname: name, Qtype: qtype, Answer: []string{name + " 0 " + nextTXT}}
}

func rev(addr string) string {
	r, err := dns.ReverseAddr(addr)
	if err != nil {
		panic(err)
	}
	return r
}

// TestSpecRows walks the acceptance list R1-R16 (R17 is in axfr_test.go).
func TestSpecRows(t *testing.T) {
	newHarness(t, handlerConfig(), fixture()).run(t, specRows())
}

// specRows are the cases of TestSpecRows, over fixture() with handlerConfig().
func specRows() []Case {
	return []Case{
		// R1
		{Qname: "dns-version.cluster.local.", Qtype: dns.TypeTXT, Answer: []string{`dns-version.cluster.local. 28800 IN TXT "1.1.0"`}},
		noData("dns-version.cluster.local.", dns.TypeA),
		nx("x.dns-version.cluster.local.", dns.TypeTXT),
		// R2: IPv4-only, dual-stack and IPv6-only ClusterIP services
		{Qname: web, Qtype: dns.TypeA, Answer: []string{web + " 5 IN A 10.96.0.10"}},
		noData(web, dns.TypeAAAA),
		noData(web, dns.TypeTXT),
		noData(web, dns.TypeMX),
		noData(web, dns.TypeANY),
		{Qname: dual, Qtype: dns.TypeA, Answer: []string{dual + " 5 IN A 10.96.0.20"}},
		{Qname: dual, Qtype: dns.TypeAAAA, Answer: []string{dual + " 5 IN AAAA fd00::20"}},
		noData(v6only, dns.TypeA),
		{Qname: v6only, Qtype: dns.TypeAAAA, Answer: []string{v6only + " 5 IN AAAA fd00::30"}},
		// R3: named ports, case-insensitive port and protocol
		{Qname: "_http._tcp." + web, Qtype: dns.TypeSRV,
			Answer: []string{"_http._tcp." + web + " 5 IN SRV 0 100 80 " + web},
			Extra:  []string{web + " 5 IN A 10.96.0.10"}},
		{Qname: "_HTTPS._Tcp." + web, Qtype: dns.TypeSRV,
			Answer: []string{"_https._tcp." + web + " 5 IN SRV 0 100 443 " + web},
			Extra:  []string{web + " 5 IN A 10.96.0.10"}},
		{Qname: "_dns._udp." + dual, Qtype: dns.TypeSRV,
			Answer: []string{"_dns._udp." + dual + " 5 IN SRV 0 100 53 " + dual},
			Extra:  []string{dual + " 5 IN A 10.96.0.20", dual + " 5 IN AAAA fd00::20"}},
		nx("_http._udp."+web, dns.TypeSRV),
		nx("_nope._tcp."+web, dns.TypeSRV),
		nx("_http.x."+web, dns.TypeSRV),
		noData("_http._tcp."+web, dns.TypeA),
		noData("_tcp."+web, dns.TypeSRV), // empty non-terminal
		nx("_udp."+web, dns.TypeSRV),
		nx("_tcp."+v6only, dns.TypeSRV), // its only port is unnamed
		// R4 and R5: bare-name SRV, named or not; weights
		{Qname: web, Qtype: dns.TypeSRV,
			Answer: []string{web + " 5 IN SRV 0 50 80 " + web, web + " 5 IN SRV 0 50 443 " + web},
			Extra:  []string{web + " 5 IN A 10.96.0.10"}},
		{Qname: v6only, Qtype: dns.TypeSRV,
			Answer: []string{v6only + " 5 IN SRV 0 100 80 " + v6only},
			Extra:  []string{v6only + " 5 IN AAAA fd00::30"}},
		{Qname: "kube-dns.kube-system.svc.cluster.local.", Qtype: dns.TypeSRV,
			Answer: []string{
				"kube-dns.kube-system.svc.cluster.local. 5 IN SRV 0 33 53 kube-dns.kube-system.svc.cluster.local.",
				"kube-dns.kube-system.svc.cluster.local. 5 IN SRV 0 33 53 kube-dns.kube-system.svc.cluster.local.",
				"kube-dns.kube-system.svc.cluster.local. 5 IN SRV 0 33 9153 kube-dns.kube-system.svc.cluster.local."},
			Extra: []string{"kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.53", "kube-dns.kube-system.svc.cluster.local. 5 IN AAAA fd00::53"}},
		// R6: headless
		{Qname: db, Qtype: dns.TypeA, Answer: []string{db + " 5 IN A 10.1.1.1", db + " 5 IN A 10.1.1.2", db + " 5 IN A 10.1.1.3"}},
		{Qname: db, Qtype: dns.TypeAAAA, Answer: []string{db + " 5 IN AAAA fd00:1::1", db + " 5 IN AAAA ::5", db + " 5 IN AAAA fd00:1::"}},
		noData(db, dns.TypeTXT),
		{Qname: "v4head.default.svc.cluster.local.", Qtype: dns.TypeA, Answer: []string{"v4head.default.svc.cluster.local. 5 IN A 10.2.0.1"}},
		noData("v4head.default.svc.cluster.local.", dns.TypeAAAA),
		nx("empty.default.svc.cluster.local.", dns.TypeA),
		nx("empty.default.svc.cluster.local.", dns.TypeTXT),
		nx("x.empty.default.svc.cluster.local.", dns.TypeA),
		// R7: endpoint names by hostname or dashed address, several addresses per hostname
		{Qname: "db-0." + db, Qtype: dns.TypeA, Answer: []string{"db-0." + db + " 5 IN A 10.1.1.1"}},
		{Qname: "db-0." + db, Qtype: dns.TypeAAAA, Answer: []string{"db-0." + db + " 5 IN AAAA fd00:1::1"}},
		noData("db-0."+db, dns.TypeTXT),
		noData("db-1."+db, dns.TypeAAAA),
		{Qname: "10-1-1-3." + db, Qtype: dns.TypeA, Answer: []string{"10-1-1-3." + db + " 5 IN A 10.1.1.3"}},
		{Qname: "0--5." + db, Qtype: dns.TypeAAAA, Answer: []string{"0--5." + db + " 5 IN AAAA ::5"}},
		{Qname: "fd00-1--0." + db, Qtype: dns.TypeAAAA, Answer: []string{"fd00-1--0." + db + " 5 IN AAAA fd00:1::"}},
		nx("--5."+db, dns.TypeAAAA),
		nx("fd00-1--."+db, dns.TypeAAAA),
		nx("fd00-1-0-0-0-0-0-0."+db, dns.TypeAAAA), // not the canonical spelling
		nx("10-1-1-1."+db, dns.TypeA),              // has a hostname
		nx("db-9."+db, dns.TypeA),
		nx("x.db-0."+db, dns.TypeA),
		{Qname: "web-b." + web, Qtype: dns.TypeA, Answer: []string{"web-b." + web + " 5 IN A 10.1.0.2"}},
		{Qname: "10-1-0-1." + web, Qtype: dns.TypeA, Answer: []string{"10-1-0-1." + web + " 5 IN A 10.1.0.1"}},
		{Qname: "fd00-10--1." + v6only, Qtype: dns.TypeAAAA, Answer: []string{"fd00-10--1." + v6only + " 5 IN AAAA fd00:10::1"}},
		// R8: headless SRV, one per (endpoint name x port), addresses in additional
		{Qname: "_mysql._tcp." + db, Qtype: dns.TypeSRV,
			Answer: []string{
				"_mysql._tcp." + db + " 5 IN SRV 0 20 3306 db-0." + db,
				"_mysql._tcp." + db + " 5 IN SRV 0 20 3306 db-1." + db,
				"_mysql._tcp." + db + " 5 IN SRV 0 20 3306 10-1-1-3." + db,
				"_mysql._tcp." + db + " 5 IN SRV 0 20 3306 0--5." + db,
				"_mysql._tcp." + db + " 5 IN SRV 0 20 3306 fd00-1--0." + db},
			Extra: dbExtra},
		{Qname: db, Qtype: dns.TypeSRV,
			Answer: []string{
				db + " 5 IN SRV 0 10 3306 db-0." + db, db + " 5 IN SRV 0 10 9104 db-0." + db,
				db + " 5 IN SRV 0 10 3306 db-1." + db, db + " 5 IN SRV 0 10 9104 db-1." + db,
				db + " 5 IN SRV 0 10 3306 10-1-1-3." + db, db + " 5 IN SRV 0 10 9104 10-1-1-3." + db,
				db + " 5 IN SRV 0 10 3306 0--5." + db, db + " 5 IN SRV 0 10 9104 0--5." + db,
				db + " 5 IN SRV 0 10 3306 fd00-1--0." + db, db + " 5 IN SRV 0 10 9104 fd00-1--0." + db},
			Extra: dbExtra},
		{Qname: "_web._tcp.v4head.default.svc.cluster.local.", Qtype: dns.TypeSRV,
			Answer: []string{"_web._tcp.v4head.default.svc.cluster.local. 5 IN SRV 0 100 80 10-2-0-1.v4head.default.svc.cluster.local."},
			Extra:  []string{"10-2-0-1.v4head.default.svc.cluster.local. 5 IN A 10.2.0.1"}},
		nx("_http._tcp."+db, dns.TypeSRV),
		noData("_tcp."+db, dns.TypeA),
		// R9, R10: PTR for ClusterIPs and endpoints, IPv4 and nibble IPv6, several owners
		{Qname: rev("10.96.0.10"), Qtype: dns.TypePTR, Answer: []string{rev("10.96.0.10") + " 5 IN PTR " + web}},
		{Qname: rev("fd00::20"), Qtype: dns.TypePTR, Answer: []string{rev("fd00::20") + " 5 IN PTR " + dual}},
		{Qname: rev("10.1.1.1"), Qtype: dns.TypePTR, Answer: []string{rev("10.1.1.1") + " 5 IN PTR db-0." + db}},
		{Qname: rev("fd00:1::1"), Qtype: dns.TypePTR, Answer: []string{rev("fd00:1::1") + " 5 IN PTR db-0." + db}},
		{Qname: rev("10.1.1.3"), Qtype: dns.TypePTR, Answer: []string{rev("10.1.1.3") + " 5 IN PTR 10-1-1-3." + db}},
		{Qname: rev("::5"), Qtype: dns.TypePTR, Answer: []string{rev("::5") + " 5 IN PTR 0--5." + db}},
		{Qname: rev("10.1.0.1"), Qtype: dns.TypePTR, Answer: []string{
			rev("10.1.0.1") + " 5 IN PTR 10-1-0-1.alias.default.svc.cluster.local.",
			rev("10.1.0.1") + " 5 IN PTR 10-1-0-1." + web}},
		{Qname: rev("10.96.0.10"), Qtype: dns.TypeA, Ns: []string{soaV4}},
		{Qname: rev("fd00::20"), Qtype: dns.TypeTXT, Ns: []string{soaV6}},
		passed(rev("192.0.2.1"), dns.TypePTR),
		passed(rev("192.0.2.1"), dns.TypeA),
		passed(rev("2001:db8::1"), dns.TypePTR),
		passed("10.in-addr.arpa.", dns.TypePTR),
		passed("96.10.in-addr.arpa.", dns.TypeSOA),
		passed("1.0.0.96.10.in-addr.arpa.", dns.TypePTR),
		passed("010.0.96.10.in-addr.arpa.", dns.TypePTR),
		passed("0.0.d.f.ip6.arpa.", dns.TypePTR),
		// R12 with pods: disabled (the default)
		nx("10-244-0-5.default.pod.cluster.local.", dns.TypeA),
		nx("default.pod.cluster.local.", dns.TypeA),
		// R13, R14
		{Qname: "cluster.local.", Qtype: dns.TypeSOA, Answer: []string{soa}},
		{Qname: "cluster.local.", Qtype: dns.TypeNS,
			Answer: []string{"cluster.local. 5 IN NS kube-dns.kube-system.svc.cluster.local."},
			Extra:  []string{"kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.53", "kube-dns.kube-system.svc.cluster.local. 5 IN AAAA fd00::53"}},
		// R15
		noData("cluster.local.", dns.TypeA),
		noData("cluster.local.", dns.TypeTXT),
		noData("svc.cluster.local.", dns.TypeA),
		noData("svc.cluster.local.", dns.TypeNS),
		noData("pod.cluster.local.", dns.TypeA),
		noData("default.svc.cluster.local.", dns.TypeA),
		noData("default.svc.cluster.local.", dns.TypeSRV),
		noData("empty-ns.svc.cluster.local.", dns.TypeA),
		// R16
		nx("nope.svc.cluster.local.", dns.TypeA),
		nx("missing.default.svc.cluster.local.", dns.TypeA),
		nx("missing.default.svc.cluster.local.", dns.TypeSRV),
		nx("web.nope.svc.cluster.local.", dns.TypeA),
		nx("google.com.default.svc.cluster.local.", dns.TypeA),
		nx("www.google.com.default.svc.cluster.local.", dns.TypeAAAA),
		nx("a.b.c.d.e.f.svc.cluster.local.", dns.TypeA),
		nx("_a._b.c.d.e.svc.cluster.local.", dns.TypeSRV),
		nx("foo.cluster.local.", dns.TypeA),
		nx("dns.cluster.local.", dns.TypeA),
		nx("ns.dns.cluster.local.", dns.TypeA),
		nx("web.default.svc.cluster.local.cluster.local.", dns.TypeA),
		nx(`we\.b.default.svc.cluster.local.`, dns.TypeA),
		// outside every zone: untouched
		passed("example.org.", dns.TypeA),
		passed("cluster.local.example.", dns.TypeA),
		passed("xcluster.local.", dns.TypeA),
		passed("local.", dns.TypeSOA),
	}
}

var dbExtra = []string{
	"db-0." + db + " 5 IN A 10.1.1.1", "db-0." + db + " 5 IN AAAA fd00:1::1",
	"db-1." + db + " 5 IN A 10.1.1.2",
	"10-1-1-3." + db + " 5 IN A 10.1.1.3",
	"0--5." + db + " 5 IN AAAA ::5",
	"fd00-1--0." + db + " 5 IN AAAA fd00:1::",
}

// TestExternalName covers R11: chased targets outside and inside the zone,
// failing targets, CNAME loops, SRV and names below the CNAME.
func TestExternalName(t *testing.T) {
	hs := newHarness(t, handlerConfig(), fixture())
	hs.run(t, externalCases())
	if n := hs.chaser.calls.Load(); n < maxChaseDepth/2 {
		t.Errorf("chaser called %d times; the chain loop was not exercised", n)
	}

	// Without a Chaser the CNAME alone answers; the client follows it.
	set, _ := handlerConfig().settings()
	next := &fakeNext{}
	bare := &harness{idx: fixture(), next: next, h: newEngine(set, fixture(), nil).wrap(next)}
	bare.run(t, []Case{{Qname: extName, Qtype: dns.TypeA, Answer: []string{cname("ext", "example.com.")}}})
}

// TestCaseEcho checks that owners echo the query's spelling while targets and
// additional names stay lower case; the comparison in Case.Check ignores case.
func TestCaseEcho(t *testing.T) {
	hs := newHarness(t, handlerConfig(), fixture())
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"WeB.DeFault.SVC.Cluster.LOCAL.", dns.TypeA},
		{"_HTTP._tcp.Web.default.svc.cluster.local.", dns.TypeSRV},
		{"DB-0.Db.default.svc.cluster.local.", dns.TypeAAAA},
		{"Ext.default.svc.cluster.local.", dns.TypeCNAME},
		{"CLUSTER.local.", dns.TypeSOA},
		{"10.0.96.10.IN-ADDR.arpa.", dns.TypePTR},
	} {
		got, _ := hs.query(t, resolvertest.Query(q.name, q.qtype))
		if got.Rcode != dns.RcodeSuccess || len(got.Answer) == 0 || !got.Authoritative {
			t.Errorf("%s: rcode %s, %d answers, AA %v", q.name, dns.RcodeToString[got.Rcode], len(got.Answer), got.Authoritative)
			continue
		}
		for _, rr := range got.Answer {
			if rr.Header().Name != q.name {
				t.Errorf("%s: answer owner %s does not echo the query", q.name, rr.Header().Name)
			}
		}
		for _, rr := range got.Extra {
			if n := rr.Header().Name; n != dns.CanonicalName(n) {
				t.Errorf("%s: additional owner %s is not lower case", q.name, n)
			}
		}
	}
}

// TestPods covers R12 in the insecure and verified modes.
func TestPods(t *testing.T) {
	const pod4, pod6 = "10-244-0-5.default.pod.cluster.local.", "fd00-244--5.default.pod.cluster.local."
	insecure := handlerConfig()
	insecure.Pods = PodsInsecure
	newHarness(t, insecure, fixture()).run(t, []Case{
		{Qname: pod4, Qtype: dns.TypeA, Answer: []string{pod4 + " 5 IN A 10.244.0.5"}},
		{Qname: "10-9-9-9.default.pod.cluster.local.", Qtype: dns.TypeA, Answer: []string{"10-9-9-9.default.pod.cluster.local. 5 IN A 10.9.9.9"}},
		{Qname: pod6, Qtype: dns.TypeAAAA, Answer: []string{pod6 + " 5 IN AAAA fd00:244::5"}},
		noData(pod4, dns.TypeAAAA),
		noData(pod6, dns.TypeA),
		noData(pod4, dns.TypeTXT),
		nx("10-244-0-5.nope.pod.cluster.local.", dns.TypeA),
		nx("junk.default.pod.cluster.local.", dns.TypeA),
		nx("10-244-0-05.default.pod.cluster.local.", dns.TypeA),
		nx("10-244-0-256.default.pod.cluster.local.", dns.TypeA),
		nx("x."+pod4, dns.TypeA),
		noData("default.pod.cluster.local.", dns.TypeA),
		nx("nope.pod.cluster.local.", dns.TypeA),
		noData("pod.cluster.local.", dns.TypeA),
	})
	verified := handlerConfig()
	verified.Pods = PodsVerified
	newHarness(t, verified, fixture()).run(t, []Case{
		{Qname: pod4, Qtype: dns.TypeA, Answer: []string{pod4 + " 5 IN A 10.244.0.5"}},
		{Qname: pod6, Qtype: dns.TypeAAAA, Answer: []string{pod6 + " 5 IN AAAA fd00:244::5"}},
		nx("10-9-9-9.default.pod.cluster.local.", dns.TypeA),
		nx("10-244-0-5.kube-system.pod.cluster.local.", dns.TypeA),
		noData("default.pod.cluster.local.", dns.TypeA),
	})
}

const extName = "ext.default.svc.cluster.local."

func cname(svc, target string) string {
	return svc + ".default.svc.cluster.local. 5 IN CNAME " + target
}

// externalCases are the cases of TestExternalName.
func externalCases() []Case {
	const ext = extName
	return []Case{
		{Qname: ext, Qtype: dns.TypeA, Answer: []string{cname("ext", "example.com."), "example.com. 300 IN A 192.0.2.1"}},
		{Qname: ext, Qtype: dns.TypeAAAA, Answer: []string{cname("ext", "example.com."), "example.com. 300 IN AAAA 2001:db8::1"}},
		{Qname: ext, Qtype: dns.TypeCNAME, Answer: []string{cname("ext", "example.com.")}},
		{Qname: ext, Qtype: dns.TypeANY, Answer: []string{cname("ext", "example.com.")}},
		{Qname: ext, Qtype: dns.TypeTXT, Answer: []string{cname("ext", "example.com.")},
			Ns: []string{"example.com. 60 IN SOA ns.example.com. admin.example.com. 1 2 3 4 60"}},
		noData(ext, dns.TypeSRV),
		nx("x."+ext, dns.TypeA),
		nx("_http._tcp."+ext, dns.TypeSRV),
		nx("_tcp."+ext, dns.TypeSRV),
		// target inside the zone: answered from the index
		{Qname: "extin.default.svc.cluster.local.", Qtype: dns.TypeA,
			Answer: []string{cname("extin", web), web + " 5 IN A 10.96.0.10"}},
		{Qname: "extin.default.svc.cluster.local.", Qtype: dns.TypeAAAA,
			Answer: []string{cname("extin", web)}, Ns: []string{soa}},
		// failing targets: the CNAME alone with the target's rcode
		{Qname: "extfail.default.svc.cluster.local.", Qtype: dns.TypeA, Rcode: NX,
			Answer: []string{cname("extfail", "nxdomain.example.")},
			Ns:     []string{"example. 60 IN SOA ns.example. admin.example. 1 2 3 4 60"}},
		{Qname: "extnosoa.default.svc.cluster.local.", Qtype: dns.TypeA, Rcode: NX,
			Answer: []string{cname("extnosoa", "nosoa.example.")}, Ns: []string{soa}},
		{Qname: "extsf.default.svc.cluster.local.", Qtype: dns.TypeA, Rcode: SF},
		{Qname: "exterr.default.svc.cluster.local.", Qtype: dns.TypeA, Rcode: SF},
		// loops, inside the index and through the chain
		{Qname: "loop1.default.svc.cluster.local.", Qtype: dns.TypeA, Rcode: SF},
		{Qname: "extloop.default.svc.cluster.local.", Qtype: dns.TypeA, Rcode: SF},
		{Qname: "loop1.default.svc.cluster.local.", Qtype: dns.TypeCNAME, Answer: []string{cname("loop1", "loop2.default.svc.cluster.local.")}},
	}
}
