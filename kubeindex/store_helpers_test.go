package kubeindex

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/clusterdns/clusterdns/kubeindex/clientsetapi"
)

// Builders of API objects for the store tests. Objects carry a
// resourceVersion because real ones always do; tests bump it on updates.

func testNamespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "1"}}
}

func testService(ns, name string, clusterIPs ...string) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: "1"},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeClusterIP,
			Ports: []corev1.ServicePort{{Name: "HTTP", Protocol: corev1.ProtocolTCP, Port: 80}},
		},
	}
	if len(clusterIPs) > 0 {
		s.Spec.ClusterIP = clusterIPs[0]
		s.Spec.ClusterIPs = clusterIPs
	}
	return s
}

func testExternal(ns, name, target string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: "1"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: target},
	}
}

// testEP is an endpoint: ready nil means "unknown" (counts as ready).
type testEP struct {
	addrs    []string
	hostname string
	ready    *bool
	pod      string
}

func tep(addr string) testEP { return testEP{addrs: []string{addr}} }

func (e testEP) host(h string) testEP   { e.hostname = h; return e }
func (e testEP) podRef(p string) testEP { e.pod = p; return e }
func (e testEP) readyIs(b bool) testEP  { e.ready = &b; return e }

func testSlice(ns, name, svc string, family discoveryv1.AddressType, eps ...testEP) *discoveryv1.EndpointSlice {
	port, pname, proto := int32(8080), "http", corev1.ProtocolTCP
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: "1",
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: family,
		Ports:       []discoveryv1.EndpointPort{{Name: &pname, Protocol: &proto, Port: &port}},
	}
	if svc == "" {
		es.Labels = nil
	}
	for _, e := range eps {
		d := discoveryv1.Endpoint{Addresses: e.addrs, Conditions: discoveryv1.EndpointConditions{Ready: e.ready}}
		if e.hostname != "" {
			d.Hostname = &e.hostname
		}
		if e.pod != "" {
			d.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: e.pod}
		}
		es.Endpoints = append(es.Endpoints, d)
	}
	return es
}

func testPod(ns, name string, ips ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: "1"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	if len(ips) > 0 {
		p.Status.PodIP = ips[0]
	}
	return p
}

func testConfig() Config {
	c := Default()
	c.Pods = PodsVerified
	return c
}

// startStore runs a Store over client until the test ends and waits for
// its first sync.
func startStore(t *testing.T, cfg Config, client API, m *Metrics) *Store {
	t.Helper()
	if m == nil {
		m = NewMetrics(prometheus.NewRegistry())
	}
	s := NewStore(cfg, client, StoreOptions{Metrics: m})
	runStore(t, s)
	return s
}

// runStore starts s until the test ends and waits for its first sync.
func runStore(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if !s.WaitSynced(ctx) {
		_, why := s.Ready()
		t.Fatalf("store not synced after 5s: %s", why)
	}
}

func newFakeStore(t *testing.T, cfg Config, objs ...runtime.Object) (*Store, *fake.Clientset) {
	t.Helper()
	cs := fake.NewClientset(objs...)
	return startStore(t, cfg, apiOf(cs), nil), cs
}

// apiOf adapts a (fake) clientset to the store's API.
func apiOf(cs kubernetes.Interface) API { return clientsetapi.New(cs) }

// storeEventually polls cond for up to 5 s.
func storeEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustAddrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// endpointsOf renders a view's endpoints as "addr label" strings.
func endpointsOf(v *ServiceView) []string {
	if v == nil {
		return nil
	}
	out := make([]string, len(v.Endpoints))
	for i, e := range v.Endpoints {
		out[i] = e.Addr.String() + " " + e.Label
	}
	return out
}
