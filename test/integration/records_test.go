package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
	"github.com/clusterdns/clusterdns/test/cluster"
)

// Records of the stub upstream in TestRecords.
var stubRecords = []string{
	"www.example.org. 300 IN A 192.0.2.10",
	"outside.example.org. 300 IN A 192.0.2.20",
}

// world is the set of real objects TestRecords queries, in two namespaces.
type world struct {
	a, b string // namespaces
	// ClusterIPs assigned by the API server.
	webA, webB, single, dualV4, dualV6, v6, dnsIP string
}

// Endpoint addresses of TestRecords: 10.244.1.0/24, 10.244.2.0/24 and
// fd00:244::/64, used by no other test (PTR answers span namespaces).
const (
	head0V4, head1V4, headNotReady = "10.244.1.1", "10.244.1.2", "10.244.1.3"
	head0V6, head1V6               = "fd00:244::1", "fd00:244::2"
	head4Only, emptyNotReady       = "10.244.1.9", "10.244.1.10"
	web0, web1                     = "10.244.2.1", "10.244.2.2" // web1 is also share's "peer"
)

func buildWorld(t *testing.T, c *cluster.Cluster) *world {
	t.Helper()
	w := &world{a: c.NewNamespace(t, "rec-a"), b: c.NewNamespace(t, "rec-b")}
	a, b := w.a, w.b
	http := cluster.Port{Name: "http", Port: 80}
	dnsUDP := cluster.Port{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}

	w.webA = c.CreateService(t, cluster.ClusterIPService(a, "web", http, dnsUDP)).Spec.ClusterIP
	w.single = c.CreateService(t, cluster.ClusterIPService(a, "single", cluster.Port{Port: 8080})).Spec.ClusterIP
	dual := c.CreateService(t, cluster.DualStackService(a, "dual", http))
	w.dualV4, w.dualV6 = dual.Spec.ClusterIPs[0], dual.Spec.ClusterIPs[1]
	v6 := cluster.ClusterIPService(a, "v6", http)
	single := corev1.IPFamilyPolicySingleStack
	v6.Spec.IPFamilyPolicy, v6.Spec.IPFamilies = &single, []corev1.IPFamily{corev1.IPv6Protocol}
	w.v6 = c.CreateService(t, v6).Spec.ClusterIP
	w.dnsIP = c.CreateService(t, cluster.ClusterIPService(a, "dns", dnsUDP)).Spec.ClusterIP
	for _, name := range []string{"head", "head4", "empty"} {
		c.CreateService(t, cluster.HeadlessService(a, name, http))
	}
	c.CreateService(t, cluster.ExternalNameService(a, "ext", "www.example.org"))
	c.CreateService(t, cluster.ExternalNameService(a, "ext-in", strings.TrimSuffix(svcName("web", a), ".")))
	c.CreateService(t, cluster.ExternalNameService(a, "ext-nx", "missing.example.org"))
	w.webB = c.CreateService(t, cluster.ClusterIPService(b, "web", http)).Spec.ClusterIP
	c.CreateService(t, cluster.HeadlessService(b, "share", http))

	ports := []cluster.Port{http}
	v4, v6fam := discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6
	for _, es := range []*discoveryv1.EndpointSlice{
		cluster.EndpointSlice(a, "web", "web-v4", v4, ports,
			cluster.Endpoint{Addresses: []string{web0}, Hostname: "web-0"},
			cluster.Endpoint{Addresses: []string{web1}}),
		cluster.EndpointSlice(a, "head", "head-v4", v4, ports,
			cluster.Endpoint{Addresses: []string{head0V4}, Hostname: "head-0"},
			cluster.Endpoint{Addresses: []string{head1V4}},
			cluster.Endpoint{Addresses: []string{headNotReady}, NotReady: true}),
		cluster.EndpointSlice(a, "head", "head-v6", v6fam, ports,
			cluster.Endpoint{Addresses: []string{head0V6}, Hostname: "head-0"},
			cluster.Endpoint{Addresses: []string{head1V6}}),
		cluster.EndpointSlice(a, "head4", "head4-v4", v4, ports, cluster.Endpoint{Addresses: []string{head4Only}}),
		cluster.EndpointSlice(a, "empty", "empty-v4", v4, ports, cluster.Endpoint{Addresses: []string{emptyNotReady}, NotReady: true}),
		cluster.EndpointSlice(b, "share", "share-v4", v4, ports, cluster.Endpoint{Addresses: []string{web1}, Hostname: "peer"}),
	} {
		c.CreateEndpointSlice(t, es)
	}
	return w
}

// lastCreated answers only once the index has seen the last Service and the
// last EndpointSlice buildWorld created.
func (w *world) lastCreated() resolvertest.Case {
	n := "peer." + svcName("share", w.b)
	return resolvertest.Case{Qname: n, Qtype: dns.TypeA, Answer: []string{n + " 5 IN A " + web1}}
}

// cases is every spec row on the world's objects.
func (w *world) cases() []resolvertest.Case {
	a, b := w.a, w.b
	const zone = "cluster.local."
	web, single, dual, v6, dnsSvc := svcName("web", a), svcName("single", a), svcName("dual", a), svcName("v6", a), svcName("dns", a)
	head, head4, empty := svcName("head", a), svcName("head4", a), svcName("empty", a)
	ext, extIn, extNX := svcName("ext", a), svcName("ext-in", a), svcName("ext-nx", a)
	webB, share := svcName("web", b), svcName("share", b)
	h0, h1, h6 := "head-0."+head, "10-244-1-2."+head, "fd00-244--2."+head
	neg := []string{clusterSOA}
	revSOA := func(zone string) []string {
		return []string{zone + " 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. " + serialToken + " 7200 1800 86400 5"}
	}
	rev := func(ip string) string { r, _ := dns.ReverseAddr(ip); return r }
	A, AAAA, SRV, PTR, TXT := dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypePTR, dns.TypeTXT
	nx := dns.RcodeNameError
	headSRV := func(owner string) []string {
		return []string{
			owner + " 5 IN SRV 0 33 80 " + h0,
			owner + " 5 IN SRV 0 33 80 " + h1,
			owner + " 5 IN SRV 0 33 80 " + h6,
		}
	}
	headExtra := []string{h0 + " 5 IN A " + head0V4, h0 + " 5 IN AAAA " + head0V6, h1 + " 5 IN A " + head1V4, h6 + " 5 IN AAAA " + head1V6}

	cs := authoritative(
		// R1, R13, R14, R15, R16: the zone itself.
		resolvertest.Case{Qname: "dns-version." + zone, Qtype: TXT, Answer: []string{`dns-version.cluster.local. 28800 IN TXT "1.1.0"`}},
		resolvertest.Case{Qname: zone, Qtype: dns.TypeSOA, Answer: neg},
		resolvertest.Case{Qname: zone, Qtype: dns.TypeNS, Answer: []string{zone + " 5 IN NS " + dnsSvc}, Extra: []string{dnsSvc + " 5 IN A " + w.dnsIP}},
		resolvertest.Case{Qname: zone, Qtype: A, Ns: neg},
		resolvertest.Case{Qname: "svc." + zone, Qtype: A, Ns: neg},
		resolvertest.Case{Qname: "pod." + zone, Qtype: A, Ns: neg},
		resolvertest.Case{Qname: a + ".svc." + zone, Qtype: A, Ns: neg},
		resolvertest.Case{Qname: b + ".svc." + zone, Qtype: TXT, Ns: neg},
		resolvertest.Case{Qname: "no-such-ns-x1.svc." + zone, Qtype: A, Rcode: nx, Ns: neg},
		resolvertest.Case{Qname: "nosuch." + a + ".svc." + zone, Qtype: A, Rcode: nx, Ns: neg},
		resolvertest.Case{Qname: "other." + zone, Qtype: A, Rcode: nx, Ns: neg},
		resolvertest.Case{Qname: "x.y." + web, Qtype: A, Rcode: nx, Ns: neg},
		// R2: ClusterIP, single and dual stack, namespaces kept apart.
		resolvertest.Case{Qname: web, Qtype: A, Answer: []string{web + " 5 IN A " + w.webA}},
		resolvertest.Case{Qname: web, Qtype: AAAA, Ns: neg},
		resolvertest.Case{Qname: web, Qtype: TXT, Ns: neg},
		resolvertest.Case{Qname: web, Qtype: dns.TypeMX, Ns: neg},
		resolvertest.Case{Qname: webB, Qtype: A, Answer: []string{webB + " 5 IN A " + w.webB}},
		resolvertest.Case{Qname: dual, Qtype: A, Answer: []string{dual + " 5 IN A " + w.dualV4}},
		resolvertest.Case{Qname: dual, Qtype: AAAA, Answer: []string{dual + " 5 IN AAAA " + w.dualV6}},
		resolvertest.Case{Qname: v6, Qtype: AAAA, Answer: []string{v6 + " 5 IN AAAA " + w.v6}},
		resolvertest.Case{Qname: v6, Qtype: A, Ns: neg},
		// R3, R4, R5: SRV of ClusterIP services, named and unnamed ports.
		resolvertest.Case{Qname: "_http._tcp." + web, Qtype: SRV, Answer: []string{"_http._tcp." + web + " 5 IN SRV 0 100 80 " + web}, Extra: []string{web + " 5 IN A " + w.webA}},
		resolvertest.Case{Qname: "_DNS._UDP." + web, Qtype: SRV, Answer: []string{"_dns._udp." + web + " 5 IN SRV 0 100 53 " + web}, Extra: []string{web + " 5 IN A " + w.webA}},
		resolvertest.Case{Qname: web, Qtype: SRV, Answer: []string{web + " 5 IN SRV 0 50 80 " + web, web + " 5 IN SRV 0 50 53 " + web}, Extra: []string{web + " 5 IN A " + w.webA}},
		resolvertest.Case{Qname: "_http._udp." + web, Qtype: SRV, Rcode: nx, Ns: neg},
		resolvertest.Case{Qname: "_tcp." + web, Qtype: SRV, Ns: neg},
		resolvertest.Case{Qname: "_http._tcp." + web, Qtype: A, Ns: neg},
		resolvertest.Case{Qname: single, Qtype: SRV, Answer: []string{single + " 5 IN SRV 0 100 8080 " + single}, Extra: []string{single + " 5 IN A " + w.single}},
		resolvertest.Case{Qname: "_http._tcp." + single, Qtype: SRV, Rcode: nx, Ns: neg},
		resolvertest.Case{Qname: dual, Qtype: SRV, Answer: []string{dual + " 5 IN SRV 0 100 80 " + dual}, Extra: []string{dual + " 5 IN A " + w.dualV4, dual + " 5 IN AAAA " + w.dualV6}},
		// R6, R7: headless, by hostname and by dashed address; endpoints of a ClusterIP service.
		resolvertest.Case{Qname: head, Qtype: A, Answer: []string{head + " 5 IN A " + head0V4, head + " 5 IN A " + head1V4}},
		resolvertest.Case{Qname: head, Qtype: AAAA, Answer: []string{head + " 5 IN AAAA " + head0V6, head + " 5 IN AAAA " + head1V6}},
		resolvertest.Case{Qname: head4, Qtype: AAAA, Ns: neg},
		resolvertest.Case{Qname: empty, Qtype: A, Rcode: nx, Ns: neg},
		resolvertest.Case{Qname: h0, Qtype: A, Answer: []string{h0 + " 5 IN A " + head0V4}},
		resolvertest.Case{Qname: h0, Qtype: AAAA, Answer: []string{h0 + " 5 IN AAAA " + head0V6}},
		resolvertest.Case{Qname: h1, Qtype: A, Answer: []string{h1 + " 5 IN A " + head1V4}},
		resolvertest.Case{Qname: h1, Qtype: AAAA, Ns: neg},
		resolvertest.Case{Qname: h6, Qtype: AAAA, Answer: []string{h6 + " 5 IN AAAA " + head1V6}},
		resolvertest.Case{Qname: "10-244-1-3." + head, Qtype: A, Rcode: nx, Ns: neg},
		resolvertest.Case{Qname: "nosuch." + head, Qtype: A, Rcode: nx, Ns: neg},
		resolvertest.Case{Qname: "web-0." + web, Qtype: A, Answer: []string{"web-0." + web + " 5 IN A " + web0}},
		resolvertest.Case{Qname: "10-244-2-2." + web, Qtype: A, Answer: []string{"10-244-2-2." + web + " 5 IN A " + web1}},
		// R8: headless SRV, each target's addresses in additional.
		resolvertest.Case{Qname: "_http._tcp." + head, Qtype: SRV, Answer: headSRV("_http._tcp." + head), Extra: headExtra},
		resolvertest.Case{Qname: head, Qtype: SRV, Answer: headSRV(head), Extra: headExtra},
		// R9, R10: PTR of ClusterIPs and endpoints, IPv4 and IPv6.
		resolvertest.Case{Qname: rev(w.webA), Qtype: PTR, Answer: []string{rev(w.webA) + " 5 IN PTR " + web}},
		resolvertest.Case{Qname: rev(w.dualV6), Qtype: PTR, Answer: []string{rev(w.dualV6) + " 5 IN PTR " + dual}},
		resolvertest.Case{Qname: rev(w.v6), Qtype: PTR, Answer: []string{rev(w.v6) + " 5 IN PTR " + v6}},
		resolvertest.Case{Qname: rev(head0V4), Qtype: PTR, Answer: []string{rev(head0V4) + " 5 IN PTR " + h0}},
		resolvertest.Case{Qname: rev(head1V6), Qtype: PTR, Answer: []string{rev(head1V6) + " 5 IN PTR " + h6}},
		resolvertest.Case{Qname: rev(web1), Qtype: PTR, Answer: []string{rev(web1) + " 5 IN PTR 10-244-2-2." + web, rev(web1) + " 5 IN PTR peer." + share}},
		resolvertest.Case{Qname: rev(w.webA), Qtype: A, Ns: revSOA("in-addr.arpa.")},
		resolvertest.Case{Qname: rev(head1V6), Qtype: TXT, Ns: revSOA("ip6.arpa.")},
		// R11: ExternalName, chased through forward (the stub) or the index.
		resolvertest.Case{Qname: ext, Qtype: A, Answer: []string{ext + " 5 IN CNAME www.example.org.", "www.example.org. * IN A 192.0.2.10"}},
		resolvertest.Case{Qname: ext, Qtype: AAAA, Answer: []string{ext + " 5 IN CNAME www.example.org."}, Ns: []string{". * IN SOA ns.stub. hostmaster.stub. 1 7200 1800 86400 30"}},
		resolvertest.Case{Qname: extNX, Qtype: A, Rcode: nx, Answer: []string{extNX + " 5 IN CNAME missing.example.org."}, Ns: []string{". * IN SOA ns.stub. hostmaster.stub. 1 7200 1800 86400 30"}},
		resolvertest.Case{Qname: extIn, Qtype: A, Answer: []string{extIn + " 5 IN CNAME " + web, web + " 5 IN A " + w.webA}},
		resolvertest.Case{Qname: ext, Qtype: SRV, Ns: neg},
		resolvertest.Case{Qname: "below." + ext, Qtype: A, Rcode: nx, Ns: neg},
		// R12 in insecure mode.
		resolvertest.Case{Qname: "10-1-2-3." + a + ".pod." + zone, Qtype: A, Answer: []string{"10-1-2-3." + a + ".pod." + zone + " 5 IN A 10.1.2.3"}},
		resolvertest.Case{Qname: "fd00-244--5." + a + ".pod." + zone, Qtype: AAAA, Answer: []string{"fd00-244--5." + a + ".pod." + zone + " 5 IN AAAA fd00:244::5"}},
		resolvertest.Case{Qname: "10-1-2-3." + a + ".pod." + zone, Qtype: AAAA, Ns: neg},
		resolvertest.Case{Qname: "10-1-2-3.no-such-ns-x1.pod." + zone, Qtype: A, Rcode: nx, Ns: neg},
		resolvertest.Case{Qname: "not-an-ip." + a + ".pod." + zone, Qtype: A, Rcode: nx, Ns: neg},
		resolvertest.Case{Qname: a + ".pod." + zone, Qtype: A, Ns: neg},
	)
	// Not the index's: forwarded to the stub (AA is the stub's business).
	return append(cs,
		resolvertest.Case{Qname: "outside.example.org.", Qtype: A, Answer: []string{"outside.example.org. * IN A 192.0.2.20"}},
		resolvertest.Case{Qname: rev("10.255.255.254"), Qtype: PTR, Rcode: nx, Ns: []string{". * IN SOA ns.stub. hostmaster.stub. 1 7200 1800 86400 30"}},
	)
}

// TestRecords checks every row of the spec on real objects in two
// namespaces, over UDP and TCP, comparing whole replies.
func TestRecords(t *testing.T) {
	t.Parallel()
	c := cluster.Start(t)
	up := startStub(t, stubRecords...)
	w := buildWorld(t, c)
	srv := startServer(t, configYAML(up.Addr, c.Kubeconfig, "pods: insecure", "nsName: dns."+w.a))
	t.Logf("FIGURE startup (first sync included) %v", srv.startup.Round(time.Millisecond))
	waitFor(t, srv.addr, w.lastCreated(), time.Now(), 10*time.Second)
	code, body := httpGet(t, srv.ready)
	if code != 200 {
		t.Errorf("/ready: %d %q, want 200", code, body)
	}

	cases := w.cases()
	began := time.Now()
	check(t, srv.addr, cases)
	t.Logf("FIGURE %d cases x UDP+TCP in %v", len(cases), time.Since(began).Round(time.Millisecond))

	// The answer echoes the query's spelling of the owner name.
	mixed := "WeB." + strings.ToUpper(w.a) + ".Svc.Cluster.LOCAL."
	for _, network := range []string{"udp", "tcp"} {
		r, err := exchange(network, srv.addr, resolvertest.Query(mixed, dns.TypeA))
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Answer) != 1 || r.Answer[0].Header().Name != mixed || r.Answer[0].(*dns.A).A.String() != w.webA {
			t.Errorf("%s: %s A answered\n%s\nwant the owner spelled as asked and %s", network, mixed, resolvertest.RRs(r.Answer), w.webA)
		}
	}

	// R17: no transfer for clients not allowed by config.
	axfr := new(dns.Msg)
	axfr.SetAxfr("cluster.local.")
	r, err := exchange("tcp", srv.addr, axfr)
	if err != nil {
		t.Fatal(err)
	}
	resolvertest.Case{Name: "AXFR cluster.local.", Rcode: dns.RcodeRefused}.Check(t, r)

	t.Run("dig", func(t *testing.T) { digRecords(t, srv.addr, w) })
}

// TestPodsVerified checks R12 in verified mode: a pod name answers only when
// a Pod in that namespace has that IP, any of its status.podIPs.
func TestPodsVerified(t *testing.T) {
	t.Parallel()
	c := cluster.Start(t)
	up := startStub(t)
	ns := c.NewNamespace(t, "pods")
	c.CreatePod(t, ns, "p", "10.250.0.5", "fd00:250::5")
	srv := startServer(t, configYAML(up.Addr, c.Kubeconfig, "pods: verified"))
	pod := func(label string) string { return label + "." + ns + ".pod.cluster.local." }
	v4 := resolvertest.Case{Qname: pod("10-250-0-5"), Qtype: dns.TypeA, Answer: []string{pod("10-250-0-5") + " 5 IN A 10.250.0.5"}}
	waitFor(t, srv.addr, v4, time.Now(), 10*time.Second)
	check(t, srv.addr, authoritative(
		v4,
		resolvertest.Case{Qname: pod("fd00-250--5"), Qtype: dns.TypeAAAA, Answer: []string{pod("fd00-250--5") + " 5 IN AAAA fd00:250::5"}},
		resolvertest.Case{Qname: pod("10-250-0-6"), Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []string{clusterSOA}},
		resolvertest.Case{Qname: "10-250-0-5.default.pod.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []string{clusterSOA}},
	))

	// The pod goes: so does its name.
	zero := int64(0)
	if err := c.Client.CoreV1().Pods(ns).Delete(t.Context(), "p", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	follow(t, srv.addr, "pod deleted (verified)", authoritative(resolvertest.Case{
		Qname: pod("10-250-0-5"), Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []string{clusterSOA},
	})[0], time.Now())
}
