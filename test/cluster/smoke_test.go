package cluster

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestSmoke walks the harness end to end: objects of every kind the DNS
// tests use are created and read back, and survive an API server restart.
// Not parallel: it stops the API server every other test depends on.
func TestSmoke(t *testing.T) {
	c := Start(t)
	ns := c.NewNamespace(t, "smoke")
	ports := []Port{{Name: "http", Port: 80}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}

	web := c.CreateService(t, DualStackService(ns, "web", ports...))
	checkClusterIPs(t, web, "10.96.0.0/12", "fd00:10:96::/112")
	head := c.CreateService(t, HeadlessService(ns, "head", ports...))
	if head.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("headless service: clusterIP %q, want None", head.Spec.ClusterIP)
	}
	ext := c.CreateService(t, ExternalNameService(ns, "ext", "example.org"))
	if ext.Spec.ExternalName != "example.org" || ext.Spec.ClusterIP != "" {
		t.Errorf("externalname service: %q clusterIP %q", ext.Spec.ExternalName, ext.Spec.ClusterIP)
	}
	c.CreatePod(t, ns, "head-0", "10.244.0.5", "fd00:244::5")
	c.CreateEndpointSlice(t, EndpointSlice(ns, "head", "head-v4", discoveryv1.AddressTypeIPv4, ports,
		Endpoint{Addresses: []string{"10.244.0.5"}, Hostname: "head-0", Pod: "head-0"},
		Endpoint{Addresses: []string{"10.244.0.6"}, NotReady: true},
	))

	readBack := func(t *testing.T) {
		t.Helper()
		ctx := t.Context()
		got, err := c.Client.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get service: %v", err)
		}
		if got.Spec.ClusterIP != web.Spec.ClusterIP {
			t.Errorf("service clusterIP %s, want %s", got.Spec.ClusterIP, web.Spec.ClusterIP)
		}
		slices, err := c.Client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
			LabelSelector: discoveryv1.LabelServiceName + "=head",
		})
		if err != nil {
			t.Fatalf("list endpointslices: %v", err)
		}
		if len(slices.Items) != 1 {
			t.Fatalf("endpointslices for head: %d, want 1", len(slices.Items))
		}
		eps := slices.Items[0].Endpoints
		if len(eps) != 2 || eps[0].Hostname == nil || *eps[0].Hostname != "head-0" ||
			eps[0].Addresses[0] != "10.244.0.5" || !*eps[0].Conditions.Ready || *eps[1].Conditions.Ready {
			t.Errorf("endpoints read back wrong: %+v", eps)
		}
		pod, err := c.Client.CoreV1().Pods(ns).Get(ctx, "head-0", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get pod: %v", err)
		}
		if pod.Status.PodIP != "10.244.0.5" || len(pod.Status.PodIPs) != 2 || pod.Status.Phase != corev1.PodRunning {
			t.Errorf("pod status: %+v", pod.Status)
		}
	}
	readBack(t)

	c.StopAPIServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	_, err := c.Client.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	cancel()
	if err == nil {
		t.Fatal("get service with the API server stopped: no error")
	}
	c.StartAPIServer(t)
	readBack(t)
}

// checkClusterIPs reports whether svc got one cluster IP from each range, in order.
func checkClusterIPs(t *testing.T, svc *corev1.Service, ranges ...string) {
	t.Helper()
	if len(svc.Spec.ClusterIPs) != len(ranges) {
		t.Fatalf("service %s: clusterIPs %v, want one from each of %v", svc.Name, svc.Spec.ClusterIPs, ranges)
	}
	for i, r := range ranges {
		ip, err := netip.ParseAddr(svc.Spec.ClusterIPs[i])
		if err != nil || !netip.MustParsePrefix(r).Contains(ip) {
			t.Errorf("service %s: clusterIPs[%d] = %s, want an address in %s", svc.Name, i, svc.Spec.ClusterIPs[i], r)
		}
	}
}
