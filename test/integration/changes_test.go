package integration

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
	"github.com/clusterdns/clusterdns/test/cluster"
)

// soaSerial returns the cluster zone's serial as clusterdns answers it.
func soaSerial(t *testing.T, addr string) uint32 {
	t.Helper()
	r, err := exchange("udp", addr, resolvertest.Query("cluster.local.", dns.TypeSOA))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 1 {
		t.Fatalf("cluster.local. SOA: %d records\n%s", len(r.Answer), resolvertest.RRs(r.Answer))
	}
	soa, ok := r.Answer[0].(*dns.SOA)
	if !ok {
		t.Fatalf("cluster.local. SOA answered %s", r.Answer[0])
	}
	return soa.Serial
}

func nxCase(name string, qtype uint16) resolvertest.Case {
	return authoritative(resolvertest.Case{Qname: name, Qtype: qtype, Rcode: dns.RcodeNameError, Ns: []string{clusterSOA}})[0]
}

func answerCase(name string, qtype uint16, answer ...string) resolvertest.Case {
	return authoritative(resolvertest.Case{Qname: name, Qtype: qtype, Answer: answer})[0]
}

// TestChanges changes objects while clusterdns runs and measures how soon
// the answers follow: a Service created, its ports and its IPs changed, it
// deleted; an EndpointSlice updated; a namespace deleted.
func TestChanges(t *testing.T) {
	t.Parallel()
	c := cluster.Start(t)
	up := startStub(t)
	ns := c.NewNamespace(t, "chg")
	srv := startServer(t, configYAML(up.Addr, c.Kubeconfig))
	svcs := c.Client.CoreV1().Services(ns)
	esClient := c.Client.DiscoveryV1().EndpointSlices(ns)
	var delays []time.Duration
	track := func(what string, want resolvertest.Case, since time.Time) {
		t.Helper()
		delays = append(delays, follow(t, srv.addr, what, want, since))
	}
	name := svcName("svc", ns)
	srvRR := func(owner string, port string) string { return owner + " 5 IN SRV 0 100 " + port + " " + name }

	// Created.
	svc := c.CreateService(t, cluster.ClusterIPService(ns, "svc", cluster.Port{Name: "http", Port: 80}))
	track("service created", answerCase(name, dns.TypeA, name+" 5 IN A "+svc.Spec.ClusterIP), time.Now())
	serial := soaSerial(t, srv.addr)

	// Ports changed.
	svc.Spec.Ports = []corev1.ServicePort{{Name: "web", Port: 8080, Protocol: corev1.ProtocolTCP}}
	svc, err := svcs.Update(t.Context(), svc, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	srvCase := answerCase("_web._tcp."+name, dns.TypeSRV, srvRR("_web._tcp."+name, "8080"))
	srvCase.Extra = []string{name + " 5 IN A " + svc.Spec.ClusterIP}
	track("service ports changed", srvCase, at)
	check(t, srv.addr, []resolvertest.Case{nxCase("_http._tcp."+name, dns.TypeSRV)})
	if s := soaSerial(t, srv.addr); s == serial {
		t.Errorf("zone serial still %d after a port change", s)
	}

	// IPs changed: single stack to dual stack adds an IPv6 ClusterIP.
	policy := corev1.IPFamilyPolicyRequireDualStack
	svc.Spec.IPFamilyPolicy = &policy
	svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	if svc, err = svcs.Update(t.Context(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(svc.Spec.ClusterIPs) != 2 {
		t.Fatalf("dual-stack upgrade: clusterIPs %v", svc.Spec.ClusterIPs)
	}
	track("service got an IPv6 ClusterIP", answerCase(name, dns.TypeAAAA, name+" 5 IN AAAA "+svc.Spec.ClusterIPs[1]), time.Now())

	// Deleted.
	if err := svcs.Delete(t.Context(), "svc", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	track("service deleted", nxCase(name, dns.TypeA), time.Now())

	// An EndpointSlice updated: addresses added, one turning not ready.
	head := svcName("head", ns)
	c.CreateService(t, cluster.HeadlessService(ns, "head", cluster.Port{Name: "http", Port: 80}))
	es := c.CreateEndpointSlice(t, cluster.EndpointSlice(ns, "head", "head-1", discoveryv1.AddressTypeIPv4, nil,
		cluster.Endpoint{Addresses: []string{"10.245.0.1"}}))
	track("headless service and slice created", answerCase(head, dns.TypeA, head+" 5 IN A 10.245.0.1"), time.Now())
	updateSlice := func(eps ...cluster.Endpoint) {
		t.Helper()
		next := cluster.EndpointSlice(ns, "head", "head-1", discoveryv1.AddressTypeIPv4, nil, eps...)
		next.ResourceVersion = es.ResourceVersion
		if es, err = esClient.Update(t.Context(), next, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	updateSlice(cluster.Endpoint{Addresses: []string{"10.245.0.2"}}, cluster.Endpoint{Addresses: []string{"10.245.0.3"}})
	track("endpointslice addresses replaced", answerCase(head, dns.TypeA, head+" 5 IN A 10.245.0.2", head+" 5 IN A 10.245.0.3"), time.Now())
	updateSlice(cluster.Endpoint{Addresses: []string{"10.245.0.2"}}, cluster.Endpoint{Addresses: []string{"10.245.0.3"}, NotReady: true})
	track("endpoint turned not ready", answerCase(head, dns.TypeA, head+" 5 IN A 10.245.0.2"), time.Now())

	// A namespace deleted, with a Service in it.
	gone := c.NewNamespace(t, "chg-gone")
	x := svcName("x", gone)
	xs := c.CreateService(t, cluster.ClusterIPService(gone, "x", cluster.Port{Name: "http", Port: 80}))
	track("service in a new namespace", answerCase(x, dns.TypeA, x+" 5 IN A "+xs.Spec.ClusterIP), time.Now())
	nsName := gone + ".svc.cluster.local."
	check(t, srv.addr, authoritative(resolvertest.Case{Qname: nsName, Qtype: dns.TypeA, Ns: []string{clusterSOA}}))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := c.DeleteNamespace(ctx, gone); err != nil {
		t.Fatal(err)
	}
	track("namespace deleted (NODATA -> NXDOMAIN)", nxCase(nsName, dns.TypeA), time.Now())
	check(t, srv.addr, []resolvertest.Case{nxCase(x, dns.TypeA)})

	reportDelays(t, delays)
}

// reportDelays prints the distribution of follow delays.
func reportDelays(t *testing.T, d []time.Duration) {
	t.Helper()
	if len(d) == 0 {
		return
	}
	s := slices.Clone(d)
	slices.Sort(s)
	over := 0
	for _, x := range s {
		if x > followGoal {
			over++
		}
	}
	t.Logf("FIGURE follow delays: n=%d median=%v max=%v, %d over the %v goal", len(s),
		s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), over, followGoal)
}
