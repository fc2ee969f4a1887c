package kubeindex

import (
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// TestBeforeSync: an unsynced index never denies a name in the cluster zone
// (SERVFAIL, nothing written) but serves what it knows; reverse names it
// does not know still go to next.
func TestBeforeSync(t *testing.T) {
	idx := fixture()
	idx.synced.Store(false)
	hs := newHarness(t, handlerConfig(), idx)
	hs.run(t, []Case{
		{Qname: "missing.default.svc.cluster.local.", Qtype: dns.TypeA, Rcode: SF},
		{Qname: "nope.svc.cluster.local.", Qtype: dns.TypeA, Rcode: SF},
		{Qname: web, Qtype: dns.TypeAAAA, Rcode: SF},
		{Qname: "cluster.local.", Qtype: dns.TypeA, Rcode: SF},
		{Qname: rev("10.96.0.10"), Qtype: dns.TypeA, Rcode: SF},
		{Qname: web, Qtype: dns.TypeA, Answer: []string{web + " 5 IN A 10.96.0.10"}},
		{Qname: rev("10.96.0.10"), Qtype: dns.TypePTR, Answer: []string{rev("10.96.0.10") + " 5 IN PTR " + web}},
		{Qname: "cluster.local.", Qtype: dns.TypeSOA, Answer: []string{soa}},
		passed(rev("192.0.2.1"), dns.TypePTR),
		passed("example.org.", dns.TypeA),
	})
	idx.synced.Store(true)
	hs.run(t, []Case{nx("missing.default.svc.cluster.local.", dns.TypeA), noData(web, dns.TypeAAAA)})
}

// TestIgnoreEmptyService: a service without ready endpoints and every name
// below it do not exist when the option is on.
func TestIgnoreEmptyService(t *testing.T) {
	const plain = "plain.default.svc.cluster.local."
	newHarness(t, handlerConfig(), fixture()).run(t, []Case{
		{Qname: plain, Qtype: dns.TypeA, Answer: []string{plain + " 5 IN A 10.96.0.40"}},
	})
	cfg := handlerConfig()
	cfg.IgnoreEmptyService = true
	newHarness(t, cfg, fixture()).run(t, []Case{
		nx(plain, dns.TypeA),
		nx(plain, dns.TypeSRV),
		nx("_tcp."+plain, dns.TypeSRV),
		{Qname: web, Qtype: dns.TypeA, Answer: []string{web + " 5 IN A 10.96.0.10"}},
		{Qname: "ext.default.svc.cluster.local.", Qtype: dns.TypeCNAME, Answer: []string{"ext.default.svc.cluster.local. 5 IN CNAME example.com."}},
	})
}

// TestFallthrough: NXDOMAIN in a listed zone goes to next; NODATA and other
// zones are answered.
func TestFallthrough(t *testing.T) {
	cfg := handlerConfig()
	cfg.Fallthrough = []string{"Default.SVC.cluster.local"}
	newHarness(t, cfg, fixture()).run(t, []Case{
		passed("missing.default.svc.cluster.local.", dns.TypeA),
		passed("x.db.default.svc.cluster.local.", dns.TypeA),
		noData(web, dns.TypeAAAA),
		nx("missing.kube-system.svc.cluster.local.", dns.TypeA),
		nx("nope.svc.cluster.local.", dns.TypeA),
		{Qname: web, Qtype: dns.TypeA, Answer: []string{web + " 5 IN A 10.96.0.10"}},
	})
	cfg.Fallthrough = []string{"."}
	newHarness(t, cfg, fixture()).run(t, []Case{
		passed("nope.svc.cluster.local.", dns.TypeA),
		noData("svc.cluster.local.", dns.TypeA),
	})
}

// TestReverseCIDR: a CIDR reverse zone answers only addresses inside it,
// under a zone rounded to the octet or nibble boundary.
func TestReverseCIDR(t *testing.T) {
	cfg := handlerConfig()
	cfg.ReverseZones = []string{"10.96.0.0/12", "fd00::/64"}
	hs := newHarness(t, cfg, fixture())
	hs.run(t, []Case{
		{Qname: rev("10.96.0.10"), Qtype: dns.TypePTR, Answer: []string{rev("10.96.0.10") + " 5 IN PTR " + web}},
		{Qname: rev("10.96.0.10"), Qtype: dns.TypeTXT, Ns: []string{"10.in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5"}},
		{Qname: rev("fd00::20"), Qtype: dns.TypePTR, Answer: []string{rev("fd00::20") + " 5 IN PTR " + dual}},
		{Qname: rev("fd00::20"), Qtype: dns.TypeA, Ns: []string{"0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5"}},
		passed(rev("10.1.1.1"), dns.TypePTR),  // known to the index, outside the CIDR
		passed(rev("fd00:1::1"), dns.TypePTR), // likewise
		passed(rev("::5"), dns.TypePTR),
	})
	if got, want := hs.h.(*Handler).e.set.zones(), []string{"cluster.local.", "10.in-addr.arpa.", "0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa."}; !slices.Equal(got, want) {
		t.Errorf("zones %v, want %v", got, want)
	}
	cfg.ReverseZones = nil
	newHarness(t, cfg, fixture()).run(t, []Case{passed(rev("10.96.0.10"), dns.TypePTR)})
}

// TestTTL: answers use the configured TTL; the SOA TTL is capped at 300.
func TestTTL(t *testing.T) {
	cfg := handlerConfig()
	cfg.TTL = 600
	cfg.Zone = "Corp.Example"
	idx := newFakeIndex().add(clusterIP("default", "web", []string{"10.96.0.10"}, nil))
	const soa600 = "corp.example. 300 IN SOA ns.dns.corp.example. hostmaster.corp.example. 42 7200 1800 86400 600"
	newHarness(t, cfg, idx).run(t, []Case{
		{Qname: "web.default.svc.corp.example.", Qtype: dns.TypeA, Answer: []string{"web.default.svc.corp.example. 600 IN A 10.96.0.10"}},
		{Qname: "web.default.svc.corp.example.", Qtype: dns.TypeAAAA, Ns: []string{soa600}},
		{Qname: "x.default.svc.corp.example.", Qtype: dns.TypeA, Rcode: NX, Ns: []string{soa600}},
		{Qname: "corp.example.", Qtype: dns.TypeSOA, Answer: []string{soa600}},
		{Qname: "dns-version.corp.example.", Qtype: dns.TypeTXT, Answer: []string{`dns-version.corp.example. 28800 IN TXT "1.1.0"`}},
		// The NS service does not exist: the NS record alone.
		{Qname: "corp.example.", Qtype: dns.TypeNS, Answer: []string{"corp.example. 600 IN NS kube-dns.kube-system.svc.corp.example."}},
		passed(web, dns.TypeA),
	})
}
