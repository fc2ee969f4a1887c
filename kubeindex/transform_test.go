package kubeindex

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

func newTestTransformer(podNames bool) *transformer {
	return &transformer{log: slog.New(slog.DiscardHandler), metrics: NewMetrics(nil), podNames: podNames}
}

func TestTransformSlice(t *testing.T) {
	v4 := discoveryv1.AddressTypeIPv4
	long := strings.Repeat("p", 64)
	type skip struct{ kind, reason string }
	for _, c := range []struct {
		name     string
		podNames bool
		in       *discoveryv1.EndpointSlice
		service  string
		want     []string // "addr label"
		skipped  []skip
	}{
		{name: "ready nil, true, false", in: testSlice("ns", "s", "Web", v4,
			tep("10.0.0.1"), tep("10.0.0.2").readyIs(true), tep("10.0.0.3").readyIs(false)),
			service: "web", want: []string{"10.0.0.1 ", "10.0.0.2 "}},
		{name: "invalid IPs skipped", in: testSlice("ns", "s", "web", v4,
			tep("10.0.0.1"), tep("10.0.0.300"), tep("fe80::1%eth0")),
			service: "web", want: []string{"10.0.0.1 "}, skipped: []skip{{kindEndpoints, "invalid_ip"}, {kindEndpoints, "invalid_ip"}}},
		{name: "invalid hostname falls back to the dashed form", in: testSlice("ns", "s", "web", v4,
			tep("10.0.0.1").host("Bad_Host"), tep("10.0.0.2").host("UPPER"), tep("10.0.0.3").host("-x")),
			service: "web", want: []string{"10.0.0.1 ", "10.0.0.2 upper", "10.0.0.3 "},
			skipped: []skip{{kindEndpoints, "invalid_hostname"}, {kindEndpoints, "invalid_hostname"}}},
		{name: "sorted, duplicate address keeps the first label", in: testSlice("ns", "s", "web", v4,
			tep("10.0.0.9").host("z"), tep("10.0.0.2").host("a"), tep("10.0.0.2").host("b")),
			service: "web", want: []string{"10.0.0.2 a", "10.0.0.9 z"}},
		{name: "several addresses of one endpoint", in: testSlice("ns", "s", "web", v4,
			testEP{addrs: []string{"10.0.0.2", "10.0.0.1"}, hostname: "h"}),
			service: "web", want: []string{"10.0.0.1 h", "10.0.0.2 h"}},
		{name: "endpointPodNames", podNames: true, in: testSlice("ns", "s", "web", v4,
			tep("10.0.0.1").podRef("web-0"), tep("10.0.0.2").podRef(long), tep("10.0.0.3").podRef("a.b"),
			tep("10.0.0.4").podRef("web-4").host("named")),
			service: "web", want: []string{"10.0.0.1 web-0", "10.0.0.2 ", "10.0.0.3 ", "10.0.0.4 named"},
			skipped: []skip{{kindEndpoints, "pod_name_not_label"}, {kindEndpoints, "pod_name_not_label"}}},
		{name: "pod names unused without endpointPodNames", in: testSlice("ns", "s", "web", v4, tep("10.0.0.1").podRef("web-0")),
			service: "web", want: []string{"10.0.0.1 "}},
		{name: "no service label", in: testSlice("ns", "s", "", v4, tep("10.0.0.1")),
			skipped: []skip{{resEndpointSlices, "no_service_label"}}},
		{name: "FQDN slice", in: testSlice("ns", "s", "web", discoveryv1.AddressTypeFQDN, tep("example.com")),
			skipped: []skip{{resEndpointSlices, "fqdn_address_type"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := newTestTransformer(c.podNames)
			out, err := tr.slice(c.in)
			if err != nil {
				t.Fatal(err)
			}
			st := out.(*storedSlice)
			var got []string
			for _, e := range st.endpoints {
				got = append(got, e.Addr.String()+" "+e.Label)
			}
			if st.service != c.service || !slices.Equal(got, c.want) {
				t.Errorf("service %q endpoints %q, want %q %q", st.service, got, c.service, c.want)
			}
			want := map[skip]float64{}
			for _, s := range c.skipped {
				want[s]++
			}
			for _, kind := range []string{kindEndpoints, resEndpointSlices} {
				for _, reason := range []string{"invalid_ip", "invalid_hostname", "pod_name_not_label", "no_service_label", "fqdn_address_type"} {
					k := skip{kind, reason}
					if got := metricValue(t, tr.metrics.skipped.WithLabelValues(kind, reason)); got != want[k] {
						t.Errorf("skipped_total{%s,%s} = %v, want %v", kind, reason, got, want[k])
					}
				}
			}
			if again, _ := tr.slice(st); again != any(st) {
				t.Error("transform of a stored slice is not the identity")
			}
		})
	}
}

func TestTransformSliceDetails(t *testing.T) {
	tr := newTestTransformer(false)
	mk := func(name string) *storedSlice {
		in := testSlice("ns", name, "web", discoveryv1.AddressTypeIPv4, tep("10.0.0.1"), tep("10.0.0.2"))
		all, bad, udpName := "", int32(0), "DNS"
		udp := corev1.ProtocolUDP
		in.Ports = append(in.Ports, discoveryv1.EndpointPort{Name: &all}, discoveryv1.EndpointPort{Port: &bad},
			discoveryv1.EndpointPort{Name: &udpName, Protocol: &udp, Port: ptrTo(int32(53))})
		in.Annotations = map[string]string{corev1.EndpointsLastChangeTriggerTime: "2024-05-06T07:08:09.5Z"}
		out, _ := tr.slice(in)
		return out.(*storedSlice)
	}
	a, b := mk("a"), mk("b")
	want := []Port{{Name: "http", Protocol: "tcp", Port: 8080}, {Name: "dns", Protocol: "udp", Port: 53}}
	if !slices.Equal(a.endpoints[0].Ports, want) {
		t.Errorf("ports = %+v, want %+v", a.endpoints[0].Ports, want)
	}
	if &a.endpoints[0].Ports[0] != &a.endpoints[1].Ports[0] {
		t.Error("endpoints of one slice do not share their ports")
	}
	if unsafe.StringData(a.endpoints[0].Ports[0].Name) != unsafe.StringData(b.endpoints[0].Ports[0].Name) ||
		unsafe.StringData(a.namespace) != unsafe.StringData(b.namespace) {
		t.Error("port names / namespaces not interned across slices")
	}
	if want := time.Date(2024, 5, 6, 7, 8, 9, 5e8, time.UTC).UnixNano(); a.trigger != want {
		t.Errorf("trigger = %d, want %d", a.trigger, want)
	}
	if k, err := cache.MetaNamespaceKeyFunc(a); err != nil || k != "ns/a" {
		t.Errorf("cache key = %q, %v", k, err)
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestTransformService(t *testing.T) {
	tr := newTestTransformer(false)
	svc := testService("NS", "web", "10.0.0.1", "bogus", "fd00::1")
	svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: "zero", Port: 0}, corev1.ServicePort{Name: "Plain", Port: 81})
	out, _ := tr.service(svc)
	st := out.(*storedService)
	if st.Namespace != "ns" || st.Kind != KindClusterIP || !slices.Equal(st.ClusterIPs, mustAddrs("10.0.0.1", "fd00::1")) {
		t.Errorf("service = %+v", st.Service)
	}
	if want := []Port{{Name: "http", Protocol: "tcp", Port: 80}, {Name: "plain", Protocol: "tcp", Port: 81}}; !slices.Equal(st.Ports, want) {
		t.Errorf("ports = %+v, want %+v", st.Ports, want)
	}
	if metricValue(t, tr.metrics.skipped.WithLabelValues(resServices, "invalid_ip")) != 1 ||
		metricValue(t, tr.metrics.skipped.WithLabelValues(resServices, "invalid_port")) != 1 {
		t.Error("invalid ClusterIP or port not counted")
	}

	old := testService("ns", "old")
	old.Spec.ClusterIP = "10.0.0.5" // pre-dual-stack object: clusterIPs unset
	out, _ = tr.service(old)
	if st := out.(*storedService); !slices.Equal(st.ClusterIPs, mustAddrs("10.0.0.5")) {
		t.Errorf("clusterIP fallback = %v", st.ClusterIPs)
	}

	out, _ = tr.service(testExternal("ns", "ext", "Foo.Example.COM."))
	if st := out.(*storedService); st.skip || st.ExternalName != "foo.example.com." {
		t.Errorf("externalName = %q skip=%v", st.ExternalName, st.skip)
	}
	out, _ = tr.service(testExternal("ns", "bad", "not a name"))
	x := newIndex(NewMetrics(nil), 1, nil)
	x.setService(svcKey{"ns", "bad"}, out.(*storedService))
	if st := out.(*storedService); !st.skip || x.views[svcKey{"ns", "bad"}] != nil {
		t.Error("an invalid externalName must leave the service out of the index")
	}
	if metricValue(t, tr.metrics.skipped.WithLabelValues(resServices, "invalid_external_name")) != 1 {
		t.Error("invalid externalName not counted")
	}
}

func TestTransformPod(t *testing.T) {
	tr := newTestTransformer(false)
	ips := func(p *corev1.Pod) []string {
		out, _ := tr.pod(p)
		var s []string
		for _, a := range out.(*storedPod).ips {
			if a.IsValid() {
				s = append(s, a.String())
			}
		}
		return s
	}
	if got := ips(testPod("ns", "p", "10.0.0.1", "fd00::1")); !slices.Equal(got, []string{"10.0.0.1", "fd00::1"}) {
		t.Errorf("dual-stack pod IPs = %v", got)
	}
	if got := ips(testPod("ns", "p", "bogus", "10.0.0.2")); !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Errorf("pod IPs with an invalid one = %v", got)
	}
	if metricValue(t, tr.metrics.skipped.WithLabelValues(resPods, "invalid_ip")) != 1 {
		t.Error("invalid pod IP not counted")
	}
	legacy := testPod("ns", "p")
	legacy.Status.PodIP = "10.0.0.3"
	if got := ips(legacy); !slices.Equal(got, []string{"10.0.0.3"}) {
		t.Errorf("podIP fallback = %v", got)
	}
	for _, phase := range []corev1.PodPhase{corev1.PodSucceeded, corev1.PodFailed} {
		p := testPod("ns", "p", "10.0.0.4")
		p.Status.Phase = phase
		if got := ips(p); got != nil {
			t.Errorf("%s pod keeps IPs %v", phase, got)
		}
	}
}
