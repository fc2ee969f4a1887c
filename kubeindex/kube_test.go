package kubeindex

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// apiOutage makes a fake clientset's lists and watches fail on demand and
// can cut the watches it handed out, as an API server going away does.
type apiOutage struct {
	down     atomic.Bool
	failures atomic.Int32 // list and watch calls refused while down
	mu       sync.Mutex
	watches  []watch.Interface // guarded by mu
}

var errAPIDown = errors.New("dial tcp 10.96.0.1:443: connect: connection refused")

func (o *apiOutage) install(cs *fake.Clientset) {
	cs.PrependReactor("list", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		if o.down.Load() {
			o.failures.Add(1)
			return true, nil, errAPIDown
		}
		return false, nil, nil
	})
	cs.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		if o.down.Load() {
			o.failures.Add(1)
			return true, nil, errAPIDown
		}
		var opts metav1.ListOptions
		if wa, ok := a.(k8stesting.WatchActionImpl); ok {
			opts = wa.ListOptions
		}
		w, err := cs.Tracker().Watch(a.GetResource(), a.GetNamespace(), opts)
		if err != nil {
			return true, nil, err
		}
		o.mu.Lock()
		o.watches = append(o.watches, w)
		o.mu.Unlock()
		return true, w, nil
	})
}

// fail takes the API server away and closes every open watch.
func (o *apiOutage) fail() {
	o.down.Store(true)
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, w := range o.watches {
		w.Stop()
	}
	o.watches = nil
}

func kubeObjects() []runtime.Object {
	port, pname, proto, ready, host := int32(8080), "http", corev1.ProtocolTCP, true, "web-0"
	return []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", ResourceVersion: "1"}},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", ResourceVersion: "1"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
				Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}},
		},
		&discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1", ResourceVersion: "1",
				Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &pname, Protocol: &proto, Port: &port}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.1.0.1"}, Hostname: &host,
				Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ext", ResourceVersion: "1"},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"},
		},
	}
}

// eventually polls the query until check passes, for up to 5 s.
func (hs *harness) eventually(t *testing.T, what string, q *dns.Msg, check func(*dns.Msg) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := hs.query(t, q)
		if check(got) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s; last reply:\n%v", what, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKubeFakeAPI runs the whole stage over real informers and a fake API
// server: answers follow updates and deletes, and survive an outage.
func TestKubeFakeAPI(t *testing.T) {
	cs := fake.NewClientset(kubeObjects()...)
	var outage apiOutage
	outage.install(cs)
	cfg := handlerConfig()
	k, err := New(cfg, Options{Client: apiOf(cs), Metrics: NewMetrics(prometheus.NewRegistry())})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := k.Ready(); ok {
		t.Error("ready before Start")
	}
	next := &fakeNext{}
	hs := &harness{next: next, h: k.Wrap(next)} // built before Start and SetChaser on purpose
	if err := k.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := k.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	if ok, why := k.Ready(); !ok {
		t.Fatalf("not ready after Start: %s", why)
	}
	if got := k.Zones(); !slices.Equal(got, []string{"cluster.local.", "in-addr.arpa.", "ip6.arpa."}) {
		t.Errorf("Zones() = %v", got)
	}
	chaser := &fakeChaser{chain: hs.h}
	k.SetChaser(chaser)
	hs.run(t, []Case{
		{Qname: web, Qtype: dns.TypeA, Answer: []string{web + " 5 IN A 10.96.0.10"}},
		{Qname: "web-0." + web, Qtype: dns.TypeA, Answer: []string{"web-0." + web + " 5 IN A 10.1.0.1"}},
		{Qname: "_http._tcp." + web, Qtype: dns.TypeSRV, Answer: []string{"_http._tcp." + web + " 5 IN SRV 0 100 80 " + web},
			Extra: []string{web + " 5 IN A 10.96.0.10"}},
		{Qname: rev("10.1.0.1"), Qtype: dns.TypePTR, Answer: []string{rev("10.1.0.1") + " 5 IN PTR web-0." + web}},
		{Qname: "ext.default.svc.cluster.local.", Qtype: dns.TypeA, Answer: []string{
			"ext.default.svc.cluster.local. 5 IN CNAME example.com.", "example.com. 300 IN A 192.0.2.1"}},
	})
	before := soaSerial(t, hs)

	// An update moves the endpoint; the answer and the serial follow.
	slice, err := cs.DiscoveryV1().EndpointSlices("default").Get(t.Context(), "web-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slice.Endpoints[0].Addresses = []string{"10.1.0.2"}
	slice.ResourceVersion = "2"
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Update(t.Context(), slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	hs.eventually(t, "endpoint update answered", resolvertest.Query("web-0."+web, dns.TypeA), func(m *dns.Msg) bool {
		return len(m.Answer) == 1 && m.Answer[0].(*dns.A).A.String() == "10.1.0.2"
	})
	if after := soaSerial(t, hs); after == before {
		t.Errorf("serial %d did not change with an answer", after)
	}

	// A delete turns the service into NXDOMAIN.
	if err := cs.CoreV1().Services("default").Delete(t.Context(), "ext", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	hs.eventually(t, "deleted service is NXDOMAIN", resolvertest.Query("ext.default.svc.cluster.local.", dns.TypeA), func(m *dns.Msg) bool {
		return m.Rcode == dns.RcodeNameError && len(m.Ns) == 1
	})

	// The API server goes away: answers keep coming from the last state.
	outage.fail()
	deadline := time.Now().Add(5 * time.Second)
	for outage.failures.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if outage.failures.Load() < 2 {
		t.Fatal("informers did not try the API again after their watches closed")
	}
	hs.run(t, []Case{
		{Qname: web, Qtype: dns.TypeA, Answer: []string{web + " 5 IN A 10.96.0.10"}},
		{Qname: "web-0." + web, Qtype: dns.TypeA, Answer: []string{"web-0." + web + " 5 IN A 10.1.0.2"}},
		{Qname: "ext.default.svc.cluster.local.", Qtype: dns.TypeA, Rcode: NX, Ns: []string{soaWithSerial(t, hs)}},
	})
	if ok, why := k.Ready(); !ok {
		t.Errorf("not ready during an outage after sync: %s", why)
	}
}

// soaSerial returns the serial of the zone SOA.
func soaSerial(t *testing.T, hs *harness) uint32 {
	t.Helper()
	m, _ := hs.query(t, resolvertest.Query("cluster.local.", dns.TypeSOA))
	if len(m.Answer) != 1 {
		t.Fatalf("no SOA: %v", m)
	}
	return m.Answer[0].(*dns.SOA).Serial
}

// soaWithSerial is the expected negative SOA at the current serial.
func soaWithSerial(t *testing.T, hs *harness) string {
	t.Helper()
	return (&dns.SOA{Hdr: dns.RR_Header{Name: "cluster.local.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 5},
		Ns: "ns.dns.cluster.local.", Mbox: "hostmaster.cluster.local.", Serial: soaSerial(t, hs),
		Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: 5}).String()
}

// TestKubeStartTimeout: Start returns after the startup timeout when the API
// never answers, the zone answers SERVFAIL, and Ready names what is missing.
func TestKubeStartTimeout(t *testing.T) {
	cs := fake.NewClientset(kubeObjects()...)
	var outage apiOutage
	outage.install(cs)
	outage.fail()
	cfg := handlerConfig()
	cfg.StartupTimeout = 200 * time.Millisecond
	k, err := New(cfg, Options{Client: apiOf(cs)})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Start(t.Context()); err != nil {
		t.Fatalf("Start failed for a missing sync: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = k.Stop(ctx)
	})
	if ok, why := k.Ready(); ok || why == "" {
		t.Errorf("Ready = %v %q, want false with a reason", ok, why)
	}
	next := &fakeNext{}
	(&harness{next: next, h: k.Wrap(next)}).run(t, []Case{
		{Qname: web, Qtype: dns.TypeA, Rcode: SF},
		passed("example.org.", dns.TypeA),
	})
	if _, err := New(Config{}, Options{Client: apiOf(cs)}); err == nil {
		t.Error("New accepted an invalid config")
	}
	var _ resolver.Handler = k.Wrap(nil)
}
