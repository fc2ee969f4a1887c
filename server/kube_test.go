package server

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/clusterdns/clusterdns/kubeindex/clientsetapi"
	k8stesting "k8s.io/client-go/testing"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

func kubeObjects() []runtime.Object {
	return []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.10", ClusterIPs: []string{"10.0.0.10"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "default"},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "www.example"},
		},
	}
}

func TestKubernetesChain(t *testing.T) {
	up := startStub(t, "example.", "www.example. 300 IN A 192.0.2.1")
	cs := fake.NewClientset(kubeObjects()...)
	s, _ := startServer(t, testConfig(t, up.Addr, "kubernetes: {zone: cluster.local, ttl: 5}\n"), Options{KubeClient: clientsetapi.New(cs)})
	addr := dnsAddr(t, s)
	q := func(name string, qtype uint16) *dns.Msg {
		return resolvertest.Exchange(t, "udp", addr, resolvertest.Query(name, qtype))
	}

	resolvertest.Case{Qname: "web.default.svc.cluster.local.", Qtype: dns.TypeA, Answer: []string{"web.default.svc.cluster.local. 5 IN A 10.0.0.10"}}.
		Check(t, q("web.default.svc.cluster.local.", dns.TypeA))
	// ExternalName: the CNAME and the target's records, chased through the
	// cache and forward.
	resolvertest.Case{Qname: "ext.default.svc.cluster.local.", Qtype: dns.TypeA, Answer: []string{
		"ext.default.svc.cluster.local. 5 IN CNAME www.example.",
		"www.example. * IN A 192.0.2.1",
	}}.Check(t, q("ext.default.svc.cluster.local.", dns.TypeA))
	resolvertest.Case{Qname: "www.example.", Qtype: dns.TypeA, Answer: []string{"www.example. * IN A 192.0.2.1"}}.
		Check(t, q("www.example.", dns.TypeA))
	if n := up.Queries.Load(); n != 1 {
		t.Errorf("stub saw %d queries, want 1: the chased target is cached like a client query", n)
	}
	if code, body := httpGet(t, "http://"+s.HTTPAddrs()["ready"].String()+"/ready"); code != 200 {
		t.Errorf("/ready with a synced index: %d %q", code, body)
	}

	// Cluster names bypass the cache: a changed service shows at once.
	svc, err := cs.CoreV1().Services("default").Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "10.0.0.11", []string{"10.0.0.11"}
	if _, err := cs.CoreV1().Services("default").Update(t.Context(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the updated ClusterIP", func() bool {
		r := q("web.default.svc.cluster.local.", dns.TypeA)
		return len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == "10.0.0.11"
	})
}

func TestKubernetesReadiness(t *testing.T) {
	up := startStub(t, "example.", "www.example. 300 IN A 192.0.2.1")
	cs := fake.NewClientset(kubeObjects()...)
	cs.PrependReactor("list", "endpointslices", func(k8stesting.Action) (bool, runtime.Object, error) {
		gr := schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}
		return true, nil, apierrors.NewForbidden(gr, "", errors.New("RBAC: may not list"))
	})
	s, _ := startServer(t, testConfig(t, up.Addr, "kubernetes: {startupTimeout: 200ms}\n"), Options{KubeClient: clientsetapi.New(cs)})
	ready := "http://" + s.HTTPAddrs()["ready"].String() + "/ready"
	eventually(t, "/ready naming the forbidden endpointslices", func() bool {
		code, body := httpGet(t, ready)
		return code == 503 && strings.HasPrefix(body, "kubeindex: ") && strings.Contains(body, "endpointslices: forbidden") &&
			strings.Count(body, "\n") == 1
	})
	// names outside the cluster zone are served meanwhile
	wwwCase.Check(t, resolvertest.Exchange(t, "udp", dnsAddr(t, s), resolvertest.Query("www.example.", dns.TypeA)))
}

func TestKubernetesReload(t *testing.T) {
	f := newReloadFixture(t, Options{KubeClient: clientsetapi.New(fake.NewClientset(kubeObjects()...))})
	web := resolvertest.Query("web.default.svc.cluster.local.", dns.TypeA)
	if r := resolvertest.Exchange(t, "udp", f.addr, web); r.Rcode != dns.RcodeNameError {
		t.Fatalf("no index yet: %s, want NXDOMAIN from the stub", dns.RcodeToString[r.Rcode])
	}
	wwwCase.Check(t, f.query(t, "www.example."))
	seen := f.up.Queries.Load()

	for _, ttl := range []string{"5", "30"} {
		f.write(t, configText(f.up.Addr, "kubernetes: {ttl: "+ttl+"}\n"))
		if err := f.s.ReloadFile(); err != nil {
			t.Fatal(err)
		}
		resolvertest.Case{Qname: "web.default.svc.cluster.local.", Qtype: dns.TypeA, Answer: []string{"web.default.svc.cluster.local. " + ttl + " IN A 10.0.0.10"}}.
			Check(t, resolvertest.Exchange(t, "udp", f.addr, web))
	}
	if !strings.Contains(f.logs.String(), "changed=[kubernetes]") {
		t.Errorf("a ttl change rebuilds only the index:\n%s", f.logs)
	}
	// the cache's skip zones changed with the first reload (rebuilt, empty),
	// not with the second: www was fetched once more in all.
	wwwCase.Check(t, f.query(t, "www.example."))
	if n := f.up.Queries.Load() - seen; n != 1 {
		t.Errorf("stub saw %d more queries for www, want 1", n)
	}
}

// TestHTTPUpWhileIndexSyncs: the HTTP endpoints start before the stages, so
// during kubeindex's startup wait /health answers and /ready names what is
// missing; DNS binds only once the stages have started.
func TestHTTPUpWhileIndexSyncs(t *testing.T) {
	up := startStub(t, "example.", "www.example. 300 IN A 192.0.2.1")
	cs := fake.NewClientset(kubeObjects()...)
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open)
	block := func(k8stesting.Action) (bool, runtime.Object, error) { <-release; return false, nil, nil }
	cs.PrependReactor("list", "*", block)
	cs.PrependWatchReactor("*", func(k8stesting.Action) (bool, watch.Interface, error) { <-release; return false, nil, nil })

	logs := &logBuffer{}
	s, err := New(testConfig(t, up.Addr, "kubernetes: {startupTimeout: 30s}\n"), Options{KubeClient: clientsetapi.New(cs), Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- s.Start(context.Background()) }()
	t.Cleanup(func() {
		open()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		<-started
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})

	eventually(t, "the HTTP endpoints", func() bool { return len(s.HTTPAddrs()) == 3 })
	base := "http://" + s.HTTPAddrs()["ready"].String()
	if code, body := httpGet(t, base+"/health"); code != 200 || body != "OK\n" {
		t.Errorf("/health while starting: %d %q", code, body)
	}
	code, body := httpGet(t, base+"/ready")
	if code != 503 || !strings.HasPrefix(body, "starting\nkubeindex: ") || !strings.Contains(body, "waiting for initial list") {
		t.Errorf("/ready while the index lists: %d %q, want 503 naming the unsynced index", code, body)
	}
	if a := s.DNSAddrs(); len(a) != 0 {
		t.Errorf("DNS bound at %v before the stages started", a)
	}
	select {
	case err := <-started:
		t.Fatalf("Start returned (%v) while the index had not listed", err)
	default:
	}

	open()
	if err := <-started; err != nil {
		t.Fatalf("Start: %v", err)
	}
	started <- nil // for the cleanup
	resolvertest.Case{Qname: "web.default.svc.cluster.local.", Qtype: dns.TypeA, Answer: []string{"web.default.svc.cluster.local. * IN A 10.0.0.10"}}.
		Check(t, resolvertest.Exchange(t, "udp", dnsAddr(t, s), resolvertest.Query("web.default.svc.cluster.local.", dns.TypeA)))
	eventually(t, "/ready 200 once synced and started", func() bool { code, _ := httpGet(t, base+"/ready"); return code == 200 })
}
