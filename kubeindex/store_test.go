package kubeindex

import (
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestStoreServices(t *testing.T) {
	s, cs := newFakeStore(t, testConfig(), testNamespace("ns"), testService("ns", "web", "10.0.0.1", "fd00::1"))
	svcs := cs.CoreV1().Services("ns")

	v := s.Service("ns", "web")
	if v == nil {
		t.Fatal("ns/web missing after sync")
	}
	if v.Kind != KindClusterIP || !slices.Equal(v.ClusterIPs, mustAddrs("10.0.0.1", "fd00::1")) ||
		!slices.Equal(v.Ports, []Port{{Name: "http", Protocol: "tcp", Port: 80}}) || v.Namespace != "ns" || v.Name != "web" {
		t.Fatalf("ns/web = %+v", v.Service)
	}
	for _, a := range []string{"10.0.0.1", "fd00::1"} {
		if got, want := s.Reverse(netip.MustParseAddr(a)), []ReverseName{{Namespace: "ns", Service: "web"}}; !slices.Equal(got, want) {
			t.Errorf("Reverse(%s) = %+v, want %+v", a, got, want)
		}
	}

	upd := testService("ns", "web", "10.0.0.1")
	upd.ResourceVersion = "2"
	upd.Spec.Ports = []corev1.ServicePort{{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53}}
	if _, err := svcs.Update(t.Context(), upd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	storeEventually(t, "update of ns/web", func() bool {
		v := s.Service("ns", "web")
		return v != nil && len(v.ClusterIPs) == 1 && len(v.Ports) == 1 && v.Ports[0] == Port{Name: "dns", Protocol: "udp", Port: 53}
	})
	if r := s.Reverse(netip.MustParseAddr("fd00::1")); r != nil {
		t.Errorf("Reverse(fd00::1) after the family was dropped = %+v", r)
	}

	hl := testService("ns", "hl", corev1.ClusterIPNone)
	ext := testExternal("ns", "ext", "Example.COM")
	for _, o := range []*corev1.Service{hl, ext} {
		if _, err := svcs.Create(t.Context(), o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	storeEventually(t, "headless and ExternalName services", func() bool {
		return s.Service("ns", "hl") != nil && s.Service("ns", "ext") != nil
	})
	if v := s.Service("ns", "hl"); v.Kind != KindHeadless || v.ClusterIPs != nil {
		t.Errorf("ns/hl = %+v", v.Service)
	}
	if v := s.Service("ns", "ext"); v.Kind != KindExternalName || v.ExternalName != "example.com." || v.ClusterIPs != nil {
		t.Errorf("ns/ext = %+v", v.Service)
	}

	if err := svcs.Delete(t.Context(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	storeEventually(t, "delete of ns/web", func() bool { return s.Service("ns", "web") == nil })
	if r := s.Reverse(netip.MustParseAddr("10.0.0.1")); r != nil {
		t.Errorf("Reverse(10.0.0.1) after delete = %+v", r)
	}
	var walked []string
	s.Walk(func(v *ServiceView) bool { walked = append(walked, v.Namespace+"/"+v.Name); return true })
	if want := []string{"ns/ext", "ns/hl"}; !slices.Equal(walked, want) {
		t.Errorf("Walk = %v, want %v", walked, want)
	}
}

func TestStoreEndpointSlices(t *testing.T) {
	v4, v6 := discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6
	s, cs := newFakeStore(t, testConfig(),
		testNamespace("ns"),
		testService("ns", "hl", corev1.ClusterIPNone),
		testService("ns", "other", "10.0.0.7"),
		testSlice("ns", "hl-a", "hl", v4,
			tep("10.1.0.2").host("b"), tep("10.1.0.1"), tep("10.1.0.9").readyIs(false)),
		testSlice("ns", "hl-b", "hl", v4,
			tep("10.1.0.2").host("dup"), tep("10.1.0.3").readyIs(true)),
		testSlice("ns", "hl-c", "hl", v6, tep("fd00::5")),
		testSlice("ns", "other-a", "other", v4, tep("10.1.0.2")),
	)
	eps := cs.DiscoveryV1().EndpointSlices("ns")

	want := []string{"10.1.0.1 ", "10.1.0.2 b", "10.1.0.3 ", "fd00::5 "}
	if got := endpointsOf(s.Service("ns", "hl")); !slices.Equal(got, want) {
		t.Fatalf("ns/hl endpoints = %q, want %q", got, want)
	}
	v := s.Service("ns", "hl")
	if p := v.Endpoints[0].Ports; !slices.Equal(p, []Port{{Name: "http", Protocol: "tcp", Port: 8080}}) {
		t.Errorf("endpoint ports = %+v", p)
	}
	wantRev := []ReverseName{
		{Namespace: "ns", Service: "hl", Endpoint: true, Label: "b"},
		{Namespace: "ns", Service: "other", Endpoint: true},
	}
	if got := s.Reverse(netip.MustParseAddr("10.1.0.2")); !slices.Equal(got, wantRev) {
		t.Errorf("Reverse(10.1.0.2) = %+v, want %+v", got, wantRev)
	}
	if got := s.Reverse(netip.MustParseAddr("10.1.0.9")); got != nil {
		t.Errorf("Reverse of a not-ready endpoint = %+v", got)
	}

	// hl-a loses 10.1.0.1 (now not ready); hl-b goes away.
	upd := testSlice("ns", "hl-a", "hl", v4, tep("10.1.0.2").host("b"), tep("10.1.0.1").readyIs(false))
	upd.ResourceVersion = "2"
	if _, err := eps.Update(t.Context(), upd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := eps.Delete(t.Context(), "hl-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want = []string{"10.1.0.2 b", "fd00::5 "}
	storeEventually(t, "slice update and delete", func() bool { return slices.Equal(endpointsOf(s.Service("ns", "hl")), want) })
	for _, a := range []string{"10.1.0.1", "10.1.0.3"} {
		if got := s.Reverse(netip.MustParseAddr(a)); got != nil {
			t.Errorf("Reverse(%s) = %+v after its endpoint left", a, got)
		}
	}

	// A slice may arrive before its service.
	if _, err := eps.Create(t.Context(), testSlice("ns", "late-x", "late", v4, tep("10.1.1.1")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Services("ns").Create(t.Context(), testService("ns", "late", corev1.ClusterIPNone), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	storeEventually(t, "slice created before its service", func() bool {
		return slices.Equal(endpointsOf(s.Service("ns", "late")), []string{"10.1.1.1 "})
	})
}

func TestStoreNamespaces(t *testing.T) {
	cfg := testConfig()
	s, cs := newFakeStore(t, cfg, testNamespace("a"))
	if !s.HasNamespace("a") || s.HasNamespace("b") {
		t.Fatalf("HasNamespace a=%v b=%v, want true false", s.HasNamespace("a"), s.HasNamespace("b"))
	}
	if _, err := cs.CoreV1().Namespaces().Create(t.Context(), testNamespace("b"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	storeEventually(t, "namespace b added", func() bool { return s.HasNamespace("b") })
	if err := cs.CoreV1().Namespaces().Delete(t.Context(), "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	storeEventually(t, "namespace a deleted", func() bool { return !s.HasNamespace("a") })
}

func TestStoreNamespaceFilter(t *testing.T) {
	v4 := discoveryv1.AddressTypeIPv4
	cfg := testConfig()
	cfg.Namespaces = []string{"A"}
	s, _ := newFakeStore(t, cfg,
		testNamespace("a"), testNamespace("b"),
		testService("a", "web", "10.0.0.1"), testService("b", "web", "10.0.0.2"),
		testSlice("a", "web-1", "web", v4, tep("10.1.0.1")), testSlice("b", "web-1", "web", v4, tep("10.1.0.2")),
		testPod("a", "p", "10.2.0.1"), testPod("b", "p", "10.2.0.2"),
	)
	if !s.HasNamespace("a") || s.HasNamespace("b") {
		t.Errorf("HasNamespace a=%v b=%v, want true false", s.HasNamespace("a"), s.HasNamespace("b"))
	}
	if s.Service("a", "web") == nil || s.Service("b", "web") != nil {
		t.Errorf("services: a/web=%v b/web=%v, want only a/web", s.Service("a", "web"), s.Service("b", "web"))
	}
	for _, a := range []string{"10.0.0.2", "10.1.0.2"} {
		if r := s.Reverse(netip.MustParseAddr(a)); r != nil {
			t.Errorf("Reverse(%s) = %+v from a filtered namespace", a, r)
		}
	}
	if !s.HasPod("a", netip.MustParseAddr("10.2.0.1")) || s.HasPod("b", netip.MustParseAddr("10.2.0.2")) {
		t.Error("HasPod must see only namespace a")
	}
	var n int
	s.Walk(func(*ServiceView) bool { n++; return true })
	if n != 1 {
		t.Errorf("Walk visited %d services, want 1", n)
	}
	for _, w := range s.watched {
		if w.resource != resNamespaces && w.desc != w.resource+" in a" {
			t.Errorf("informer %q is not scoped to namespace a", w.desc)
		}
	}
}

func TestStorePods(t *testing.T) {
	done := testPod("ns", "done", "10.3.0.9")
	done.Status.Phase = corev1.PodSucceeded
	s, cs := newFakeStore(t, testConfig(),
		testPod("ns", "dual", "10.3.0.1", "fd00::31"),
		testPod("ns", "host1", "192.168.0.1"), testPod("ns", "host2", "192.168.0.1"),
		done,
	)
	pods := cs.CoreV1().Pods("ns")
	has := func(ns, a string) bool { return s.HasPod(ns, netip.MustParseAddr(a)) }
	if !has("ns", "10.3.0.1") || !has("ns", "fd00::31") || has("other", "10.3.0.1") || has("ns", "10.3.0.9") {
		t.Fatal("pod IPs after sync: want both IPs of ns/dual, nothing else")
	}
	upd := testPod("ns", "dual", "10.3.0.2")
	upd.ResourceVersion = "2"
	if _, err := pods.Update(t.Context(), upd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	storeEventually(t, "pod IP change", func() bool { return has("ns", "10.3.0.2") && !has("ns", "10.3.0.1") && !has("ns", "fd00::31") })
	// Two hostNetwork pods share the node IP: deleting one keeps it.
	if err := pods.Delete(t.Context(), "host1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(t.Context(), "dual", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	storeEventually(t, "pod delete", func() bool { return !has("ns", "10.3.0.2") })
	if !has("ns", "192.168.0.1") {
		t.Error("shared IP lost when only one of its pods was deleted")
	}
}

func TestStorePodsOnlyWhenVerified(t *testing.T) {
	for _, mode := range []string{PodsDisabled, PodsInsecure} {
		cfg := testConfig()
		cfg.Pods = mode
		s, _ := newFakeStore(t, cfg, testPod("ns", "p", "10.3.0.1"))
		if s.HasPod("ns", netip.MustParseAddr("10.3.0.1")) {
			t.Errorf("pods: %s indexed pods", mode)
		}
		for _, w := range s.watched {
			if w.resource == resPods {
				t.Errorf("pods: %s runs a pod informer", mode)
			}
		}
	}
}
