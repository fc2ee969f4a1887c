package kubeindex

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// bigSlices splits n ready IPv4 endpoints of svc into slices of at most
// 1000 (the EndpointSlice controller's limit).
func bigSlices(ns, svc string, n int) []runtime.Object {
	var out []runtime.Object
	for start := 0; start < n; start += 1000 {
		var eps []testEP
		for i := start; i < min(n, start+1000); i++ {
			eps = append(eps, tep(fmt.Sprintf("10.2.%d.%d", i/250, i%250+1)))
		}
		out = append(out, testSlice(ns, fmt.Sprintf("%s-%d", svc, start/1000), svc, discoveryv1.AddressTypeIPv4, eps...))
	}
	return out
}

// TestStoreUnusualObjects feeds the store, through the fake clientset and
// real informers, objects with content the API server accepts (or an older
// or buggy one might): whatever can be answered is indexed, the rest is left
// out with a log line and a skipped_total count, and nothing stops the
// index from syncing.
func TestStoreUnusualObjects(t *testing.T) {
	web := testService("default", "web", "10.0.0.1", "not-an-ip", "fd00::1%eth0")
	web.Spec.Ports = append(web.Spec.Ports, corev1.ServicePort{Name: "zero", Port: 0}, corev1.ServicePort{Name: "huge", Port: 70000})

	ports := testService("default", "ports", "10.0.0.2")
	ports.Spec.Ports = nil
	for i := range 1000 {
		ports.Spec.Ports = append(ports.Spec.Ports, corev1.ServicePort{Name: fmt.Sprintf("p%d", i), Protocol: corev1.ProtocolTCP, Port: int32(1000 + i)})
	}

	big := testService("default", "big")
	big.Spec.ClusterIP = corev1.ClusterIPNone

	hosts := testService("default", "hosts")
	hosts.Spec.ClusterIP = corev1.ClusterIPNone
	badIPs := testSlice("default", "hosts-bad-ips", "hosts", discoveryv1.AddressTypeIPv4,
		tep("10.3.0.1"), tep(""), tep("10.3.0.256"), tep("fe80::1%eth0"), tep("10.3.0.2/32"), tep(" 10.3.0.3"))
	badHosts := testSlice("default", "hosts-names", "hosts", discoveryv1.AddressTypeIPv4,
		tep("10.3.1.1").host("Web-0"), // upper case: lowered
		tep("10.3.1.2").host("a.b"),
		tep("10.3.1.3").host("-x"),
		tep("10.3.1.4").host(strings.Repeat("h", 64)),
		tep("10.3.1.5").host("wéb"),
		tep("10.3.1.6").host("web_1"))

	objs := []runtime.Object{testNamespace("default"), web, ports, big, hosts, badIPs, badHosts,
		testSlice("default", "orphan", "", discoveryv1.AddressTypeIPv4, tep("10.4.0.1")),
		testSlice("default", "fqdn", "hosts", discoveryv1.AddressTypeFQDN, tep("db.example.com")),
		testExternal("default", "badext", "exa mple..com"),
	}
	objs = append(objs, bigSlices("default", "big", 5000)...)

	logs := &syncBuffer{}
	m := NewMetrics(prometheus.NewRegistry())
	s := NewStore(testConfig(), apiOf(fake.NewClientset(objs...)), StoreOptions{Metrics: m,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	runStore(t, s)

	v := s.Service("default", "web")
	if v == nil || !slices.Equal(v.ClusterIPs, mustAddrs("10.0.0.1")) || len(v.Ports) != 1 || v.Ports[0].Port != 80 {
		t.Errorf("web: %+v, want the valid ClusterIP and port only", v)
	}
	if v := s.Service("default", "ports"); v == nil || len(v.Ports) != 1000 || v.Ports[999] != (Port{"p999", "tcp", 1999}) {
		t.Errorf("ports: %d ports, want 1000", len(v.Ports))
	}
	if v := s.Service("default", "big"); v == nil || len(v.Endpoints) != 5000 {
		t.Errorf("big: view %v, want 5000 endpoints", v != nil)
	}
	wantHosts := []string{
		"10.3.0.1 ", "10.3.1.1 web-0", "10.3.1.2 ", "10.3.1.3 ", "10.3.1.4 ", "10.3.1.5 ", "10.3.1.6 ",
	}
	if got := endpointsOf(s.Service("default", "hosts")); !slices.Equal(got, wantHosts) {
		t.Errorf("hosts endpoints %q, want %q: invalid IPs left out, invalid hostnames as dashed addresses", got, wantHosts)
	}
	if s.Service("default", "badext") != nil {
		t.Error("an ExternalName with an invalid target is indexed")
	}
	if r := s.Reverse(netip.MustParseAddr("10.4.0.1")); r != nil {
		t.Errorf("the address of a slice without a service label is indexed: %v", r)
	}

	for _, c := range []struct {
		kind, reason string
		want         float64
	}{
		{resServices, "invalid_ip", 2},
		{resServices, "invalid_port", 2},
		{resServices, "invalid_external_name", 1},
		{kindEndpoints, "invalid_ip", 5},
		{kindEndpoints, "invalid_hostname", 5},
		{resEndpointSlices, "no_service_label", 1},
		{resEndpointSlices, "fqdn_address_type", 1},
	} {
		if got := metricValue(t, m.skipped.WithLabelValues(c.kind, c.reason)); got != c.want {
			t.Errorf("skipped_total{kind=%s,reason=%s} = %v, want %v", c.kind, c.reason, got, c.want)
		}
		line := fmt.Sprintf("msg=\"kubeindex: skipped\" kind=%s reason=%s", c.kind, c.reason)
		if !strings.Contains(logs.String(), line) {
			t.Errorf("no log line %q", line)
		}
	}
	if !strings.Contains(logs.String(), `hostname=a.b`) || !strings.Contains(logs.String(), `ip=10.3.0.256`) {
		t.Errorf("skip log lines do not name the value:\n%s", logs)
	}
}

// syncBuffer is a log sink safe for the informers' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
