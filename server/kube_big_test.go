package server

import (
	"fmt"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/clusterdns/clusterdns/kubeindex/clientsetapi"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// TestKubernetesBigAnswers: a headless service with 5000 endpoints and a
// service with 1000 ports, answered through the whole server. Over TCP the
// A answer holds every address that fits in 65535 bytes, with TC since not
// all do; over UDP it is cut to the client's size with TC; the 1000 SRV
// records fit a TCP message and all come back.
func TestKubernetesBigAnswers(t *testing.T) {
	up := startStub(t, "example.")
	objs := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "default"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ports", Namespace: "default"}, Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.2", ClusterIPs: []string{"10.0.0.2"}}},
	}
	svc := objs[2].(*corev1.Service)
	for i := range 1000 {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: fmt.Sprintf("p%d", i), Protocol: corev1.ProtocolTCP, Port: int32(1000 + i)})
	}
	all := map[string]bool{}
	for s := range 5 {
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: fmt.Sprintf("big-%d", s), Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "big"}},
			AddressType: discoveryv1.AddressTypeIPv4,
		}
		for i := s * 1000; i < (s+1)*1000; i++ {
			ip := fmt.Sprintf("10.2.%d.%d", i/250, i%250+1)
			all[ip] = true
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}})
		}
		objs = append(objs, es)
	}
	s, _ := startServer(t, testConfig(t, up.Addr, "kubernetes: {}\n"), Options{KubeClient: clientsetapi.New(fake.NewClientset(objs...))})
	addr := dnsAddr(t, s)

	const name = "big.default.svc.cluster.local."
	qlen := len(name) + 1 + 4 // wire name and type, class
	for _, c := range []struct {
		network string
		limit   int
	}{{"tcp", 65535}, {"udp", 512}} {
		r := resolvertest.Exchange(t, c.network, addr, resolvertest.Query(name, dns.TypeA))
		fit := (c.limit - 12 - qlen) / 16 // 16 bytes per A record with a compressed owner
		if r.Rcode != dns.RcodeSuccess || !r.Truncated || len(r.Answer) != fit {
			t.Fatalf("%s: %s, TC %v, %d records; want NOERROR, TC, the %d that fit", c.network, dns.RcodeToString[r.Rcode], r.Truncated, len(r.Answer), fit)
		}
		seen := map[string]bool{}
		for _, rr := range r.Answer {
			a, ok := rr.(*dns.A)
			if !ok || rr.Header().Name != name || !all[a.A.String()] || seen[a.A.String()] {
				t.Fatalf("%s: unexpected or repeated record %v", c.network, rr)
			}
			seen[a.A.String()] = true
		}
	}

	r := resolvertest.Exchange(t, "tcp", addr, resolvertest.Query("ports.default.svc.cluster.local.", dns.TypeSRV))
	if r.Rcode != dns.RcodeSuccess || r.Truncated || len(r.Answer) != 1000 {
		t.Fatalf("1000-port SRV over TCP: %s, TC %v, %d records; want all 1000", dns.RcodeToString[r.Rcode], r.Truncated, len(r.Answer))
	}
	ports := map[uint16]bool{}
	for _, rr := range r.Answer {
		ports[rr.(*dns.SRV).Port] = true
	}
	if len(ports) != 1000 {
		t.Errorf("%d distinct SRV ports, want 1000", len(ports))
	}
	if r := resolvertest.Exchange(t, "udp", addr, resolvertest.Query("ports.default.svc.cluster.local.", dns.TypeSRV)); !r.Truncated {
		t.Errorf("1000-port SRV over UDP without EDNS: %d records and no TC", len(r.Answer))
	}
}
