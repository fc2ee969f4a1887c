package kubeindex

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

func TestParseClusterName(t *testing.T) {
	const zone = "cluster.local."
	for _, tc := range []struct {
		name string
		want clusterName
	}{
		{"cluster.local.", clusterName{kind: nameApex}},
		{"dns-version.cluster.local.", clusterName{kind: nameVersion}},
		{"svc.cluster.local.", clusterName{kind: nameSvcRoot}},
		{"pod.cluster.local.", clusterName{kind: namePodRoot}},
		{"ns.svc.cluster.local.", clusterName{kind: nameNamespace, ns: "ns"}},
		{"s.ns.svc.cluster.local.", clusterName{kind: nameService, ns: "ns", svc: "s", svcName: "s.ns.svc.cluster.local."}},
		{"e.s.ns.svc.cluster.local.", clusterName{kind: nameEndpoint, ns: "ns", svc: "s", ep: "e", svcName: "s.ns.svc.cluster.local."}},
		{"_tcp.s.ns.svc.cluster.local.", clusterName{kind: nameProto, ns: "ns", svc: "s", proto: "tcp", svcName: "s.ns.svc.cluster.local."}},
		{"_p._udp.s.ns.svc.cluster.local.", clusterName{kind: namePort, ns: "ns", svc: "s", port: "p", proto: "udp", svcName: "s.ns.svc.cluster.local."}},
		{"ns.pod.cluster.local.", clusterName{kind: namePodNamespace, ns: "ns"}},
		{"1-2-3-4.ns.pod.cluster.local.", clusterName{kind: namePod, ns: "ns", ep: "1-2-3-4"}},
		{"x.dns-version.cluster.local.", clusterName{}},
		{"foo.cluster.local.", clusterName{}},
		{"a.b.ns.pod.cluster.local.", clusterName{}},
		{"p._udp.s.ns.svc.cluster.local.", clusterName{}},
		{"_p.udp.s.ns.svc.cluster.local.", clusterName{}},
		{"_._udp.s.ns.svc.cluster.local.", clusterName{}},
		{"x._p._udp.s.ns.svc.cluster.local.", clusterName{}},
		{"a..svc.cluster.local.", clusterName{}},
		{`a\.b.ns.svc.cluster.local.`, clusterName{}},
	} {
		if got := parseClusterName(tc.name, zone); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if !inZone("a.b.", ".") || inZone("xcluster.local.", zone) || !inZone("a.cluster.local.", zone) {
		t.Error("inZone does not respect label boundaries")
	}
}

func TestDashed(t *testing.T) {
	for _, tc := range []struct{ addr, label string }{
		{"10.1.2.3", "10-1-2-3"},
		{"fd00::1", "fd00--1"},
		{"::1", "0--1"},
		{"fd00::", "fd00--0"},
		{"::", "0--0"},
		{"2001:db8:1:2:3:4:5:6", "2001-db8-1-2-3-4-5-6"},
		{"::ffff:10.1.2.3", "10-1-2-3"},
	} {
		a := netip.MustParseAddr(tc.addr)
		if got := string(appendDashed(nil, a)); got != tc.label {
			t.Errorf("appendDashed(%s) = %s, want %s", tc.addr, got, tc.label)
		}
		if !dashedIs(tc.label, a) {
			t.Errorf("dashedIs(%s, %s) false", tc.label, tc.addr)
		}
		if got, ok := parseDashed(tc.label); !ok || got != a.Unmap() {
			t.Errorf("parseDashed(%s) = %v %v, want %s", tc.label, got, ok, tc.addr)
		}
	}
	for _, bad := range []string{"", "10-1-2", "10-1-2-3-4", "10-01-2-3", "256-1-2-3", "--1", "fd00--", "fd00-0-0-0-0-0-0-1", "x-1-2-3", "1--2--3", "fd00--1%eth0", strings.Repeat("1", 60)} {
		if a, ok := parseDashed(bad); ok {
			t.Errorf("parseDashed(%q) = %s, want failure", bad, a)
		}
	}
	// IPv6 addresses with exactly three dashes must not be mistaken for IPv4.
	if a, ok := parseDashed("fd00--1-2"); !ok || a != netip.MustParseAddr("fd00::1:2") {
		t.Errorf("parseDashed(fd00--1-2) = %v %v", a, ok)
	}
}

func TestParseReverse(t *testing.T) {
	for _, a := range []string{"10.96.0.10", "0.0.0.0", "255.255.255.255", "fd00::20", "::1", "2001:db8:ffff::abcd"} {
		addr := netip.MustParseAddr(a)
		name, _ := dns.ReverseAddr(a)
		if got, ok := parseReverse(name); !ok || got != addr {
			t.Errorf("parseReverse(%s) = %v %v, want %s", name, got, ok, a)
		}
	}
	for _, bad := range []string{
		"in-addr.arpa.", "10.in-addr.arpa.", "0.96.10.in-addr.arpa.", "1.0.0.96.10.in-addr.arpa.",
		"010.0.96.10.in-addr.arpa.", "256.0.96.10.in-addr.arpa.", "a.0.96.10.in-addr.arpa.", "..96.10.in-addr.arpa.",
		"ip6.arpa.", "0.d.f.ip6.arpa.", strings.Repeat("0.", 31) + "g.ip6.arpa.", strings.Repeat("00.", 16) + "ip6.arpa.",
		strings.Repeat("0.", 33) + "ip6.arpa.", "example.com.",
	} {
		if got, ok := parseReverse(bad); ok {
			t.Errorf("parseReverse(%s) = %s, want failure", bad, got)
		}
	}
}

func TestParseReverseZone(t *testing.T) {
	for _, tc := range []struct{ in, name, prefix string }{
		{"in-addr.arpa", "in-addr.arpa.", "0.0.0.0/0"},
		{"IP6.ARPA.", "ip6.arpa.", "::/0"},
		{"96.10.in-addr.arpa.", "96.10.in-addr.arpa.", "10.96.0.0/16"},
		{"0.0.d.f.ip6.arpa.", "0.0.d.f.ip6.arpa.", "fd00::/16"},
		{"10.96.0.0/12", "10.in-addr.arpa.", "10.96.0.0/12"},
		{"10.96.0.1/16", "96.10.in-addr.arpa.", "10.96.0.0/16"},
		{"192.168.1.7/32", "7.1.168.192.in-addr.arpa.", "192.168.1.7/32"},
		{"fd00::/64", "0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", "fd00::/64"},
		{"fd00:1200::/22", "1.0.0.d.f.ip6.arpa.", "fd00:1000::/22"},
	} {
		rz, err := parseReverseZone(tc.in)
		if err != nil || rz.name != tc.name || rz.prefix != netip.MustParsePrefix(tc.prefix) {
			t.Errorf("parseReverseZone(%s) = %+v, %v; want %s %s", tc.in, rz, err, tc.name, tc.prefix)
		}
	}
	for _, bad := range []string{"example.com", "256.in-addr.arpa.", "1.2.3.4.5.in-addr.arpa.", "g.ip6.arpa.", "10.96.0.0/33", "10/8", "00.ip6.arpa."} {
		if rz, err := parseReverseZone(bad); err == nil {
			t.Errorf("parseReverseZone(%s) = %+v, want error", bad, rz)
		}
	}
}

func TestSRVWeight(t *testing.T) {
	for n, want := range map[int]uint16{1: 100, 2: 50, 3: 33, 7: 14, 100: 1, 101: 1, 5000: 1} {
		if got := srvWeight(n); got != want {
			t.Errorf("srvWeight(%d) = %d, want %d", n, got, want)
		}
	}
}

// FuzzNames: the parsers never panic and agree with their writers, a
// parsed cluster name spells the query name back, and the handler's reply
// to any name is consistent: names outside its zones are passed on, a
// negative answer in the zone carries the zone's SOA, and every answer
// record is owned by the query name or by a CNAME target before it.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"web.default.svc.cluster.local.", "_a._tcp.s.n.svc.cluster.local.", "10-1-2-3", "fd00--1", "10.0.96.10.in-addr.arpa.", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa."} {
		f.Add(s)
	}
	const zone = "cluster.local."
	hs := newHarness(f, handlerConfig(), fixture())
	f.Fuzz(func(t *testing.T, s string) {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV, dns.TypePTR} {
			q := resolvertest.Query(s, qtype)
			if _, err := q.Copy().Pack(); err == nil { // a name that can arrive on the wire
				checkReply(t, q, zone, hs)
			}
		}
		s = strings.ToLower(s)
		if inZone(s, zone) {
			checkClusterName(t, s, zone)
		}
		if a, ok := parseDashed(s); ok && string(appendDashed(nil, a)) != s {
			t.Errorf("parseDashed(%q) = %s, which writes as %s", s, a, appendDashed(nil, a))
		}
		if a, ok := parseReverse(s); ok {
			if want, _ := dns.ReverseAddr(a.String()); want != s {
				t.Errorf("parseReverse(%q) = %s, whose reverse name is %s", s, a, want)
			}
		}
	})
}

// checkClusterName parses name (lower case, in zone) and spells it back
// from the parts.
func checkClusterName(t *testing.T, name, zone string) {
	c := parseClusterName(name, zone)
	for _, part := range []string{c.ns, c.svc, c.ep, c.port, c.proto} {
		if strings.Contains(part, ".") {
			t.Fatalf("parseClusterName(%q) = %+v: a part holds a dot", name, c)
		}
	}
	svcName := c.svc + "." + c.ns + ".svc." + zone
	var back string
	switch c.kind {
	case nameNone:
		return
	case nameApex:
		back = zone
	case nameVersion:
		back = "dns-version." + zone
	case nameSvcRoot:
		back = "svc." + zone
	case namePodRoot:
		back = "pod." + zone
	case nameNamespace:
		back = c.ns + ".svc." + zone
	case nameService:
		back = svcName
	case nameEndpoint:
		back = c.ep + "." + svcName
	case nameProto:
		back = "_" + c.proto + "." + svcName
	case namePort:
		back = "_" + c.port + "._" + c.proto + "." + svcName
	case namePodNamespace:
		back = c.ns + ".pod." + zone
	case namePod:
		back = c.ep + "." + c.ns + ".pod." + zone
	}
	if back != name {
		t.Fatalf("parseClusterName(%q) = %+v, which spells %q", name, c, back)
	}
	if c.svc != "" && c.svcName != svcName {
		t.Fatalf("parseClusterName(%q): svcName %q, want %q", name, c.svcName, svcName)
	}
}

// checkReply asks hs and checks the reply's consistency (hs.query checks
// its header and question).
func checkReply(t *testing.T, q *dns.Msg, zone string, hs *harness) {
	got, passed := hs.query(t, q)
	name := strings.ToLower(dns.Fqdn(q.Question[0].Name))
	inReverse := inZone(name, "in-addr.arpa.") || inZone(name, "ip6.arpa.")
	if !inZone(name, zone) && !inReverse {
		if !passed {
			t.Fatalf("%s is outside our zones but was answered: %s", q.Question[0].Name, dns.RcodeToString[got.Rcode])
		}
		return
	}
	if passed && inReverse {
		return // an address the index does not own: the next stage's answer
	}
	owners := map[string]bool{name: true}
	for _, rr := range got.Answer {
		owner := strings.ToLower(rr.Header().Name)
		if !owners[owner] {
			t.Fatalf("%s: answer %s is owned by neither the query name nor a CNAME target", q.Question[0].Name, rr)
		}
		if c, ok := rr.(*dns.CNAME); ok {
			owners[strings.ToLower(c.Target)] = true
		}
	}
	if inZone(name, zone) && len(got.Answer) == 0 && (got.Rcode == dns.RcodeNameError || got.Rcode == dns.RcodeSuccess) {
		if len(got.Ns) != 1 || got.Ns[0].Header().Rrtype != dns.TypeSOA || got.Ns[0].Header().Name != zone {
			t.Fatalf("%s: negative answer %s without the zone's SOA: %v", q.Question[0].Name, dns.RcodeToString[got.Rcode], got.Ns)
		}
	}
}
