package kubeindex

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// benchObjects builds n ClusterIP services in 100 namespaces, each with
// one EndpointSlice of per endpoints shaped like the EndpointSlice
// controller's (targetRef, nodeName, zone, conditions), when per > 0.
// Service i has ClusterIP 10.0.0.0+i; its endpoint j has 10.128.0.0+i*per+j.
func benchObjects(n, per int) []k8sruntime.Object {
	ip := func(base netip.Addr, k int) string {
		b := base.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) + uint32(k)
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
	}
	svcBase, epBase := netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("10.128.0.0")
	var objs []k8sruntime.Object
	for i := range 100 {
		objs = append(objs, testNamespace(fmt.Sprintf("ns-%d", i)))
	}
	yes, port, pname, proto := true, int32(8080), "http", corev1.ProtocolTCP
	node, zone := "node-1", "zone-a"
	for i := range n {
		ns, name := fmt.Sprintf("ns-%d", i%100), fmt.Sprintf("svc-%d", i)
		svc := testService(ns, name, ip(svcBase, i))
		svc.Labels = map[string]string{"app": name, "team": "bench"}
		svc.Spec.Selector = map[string]string{"app": name}
		objs = append(objs, svc)
		if per == 0 {
			continue
		}
		es := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-abcde", ResourceVersion: "1",
				Labels:      map[string]string{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"},
				Annotations: map[string]string{corev1.EndpointsLastChangeTriggerTime: "2024-01-01T00:00:00Z"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &pname, Protocol: &proto, Port: &port}},
		}
		for j := range per {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{ip(epBase, i*per+j)},
				Conditions: discoveryv1.EndpointConditions{Ready: &yes, Serving: &yes},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: fmt.Sprintf("%s-7d9f8c-%d", name, j)},
				NodeName:   &node,
				Zone:       &zone,
			})
		}
		objs = append(objs, es)
	}
	return objs
}

// loadedStore feeds benchObjects(n, per) through a Store's transforms and
// handlers without running informers: fast, for lookup tests.
func loadedStore(tb testing.TB, n, per int) *Store {
	tb.Helper()
	s := NewStore(testConfig(), apiOf(fake.NewClientset()), StoreOptions{})
	svcH, sliceH, nsH := s.serviceHandler(), s.sliceHandler(), s.namespaceHandler()
	for _, o := range benchObjects(n, per) {
		switch o := o.(type) {
		case *corev1.Namespace:
			st, _ := s.tr.namespace(o)
			nsH.OnAdd(st, true)
		case *corev1.Service:
			st, _ := s.tr.service(o)
			svcH.OnAdd(st, true)
		case *discoveryv1.EndpointSlice:
			st, _ := s.tr.slice(o)
			sliceH.OnAdd(st, true)
		}
	}
	return s
}

func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// storeHeap is the heap a synced, stopped Store retains over a fake
// clientset preloaded with objs: heap after the store synced minus heap
// before it was built, both with the clientset (and its full objects) alive.
func storeHeap(tb testing.TB, objs []k8sruntime.Object) uint64 {
	cs := fake.NewClientset(objs...)
	before := heapAfterGC()
	s := NewStore(testConfig(), apiOf(cs), StoreOptions{})
	if err := s.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if !s.WaitSynced(ctx) {
		_, why := s.Ready()
		tb.Fatalf("not synced: %s", why)
	}
	if err := s.Stop(ctx); err != nil {
		tb.Fatal(err)
	}
	after := heapAfterGC()
	runtime.KeepAlive(s)
	runtime.KeepAlive(cs)
	return after - before
}

// BenchmarkStoreMemory loads 10,000 services and 10,000 slices of 10
// endpoints (100,000 endpoints) through the informers and reports the
// store's retained heap (informer caches of slim objects plus the index):
// per service from a services-only load, per endpoint from the difference
// to the full load (slice overhead included).
func BenchmarkStoreMemory(b *testing.B) {
	const nSvc, per = 10_000, 10
	svcOnly, full := benchObjects(nSvc, 0), benchObjects(nSvc, per)
	var hs, hf uint64
	for b.Loop() {
		hs = storeHeap(b, svcOnly)
		hf = storeHeap(b, full)
	}
	b.ReportMetric(float64(hs)/nSvc, "B/service")
	b.ReportMetric(float64(hf-hs)/(nSvc*per), "B/endpoint")
	b.ReportMetric(float64(hf)/(1<<20), "MiB-total")
}

// BenchmarkStoreListMemory syncs a Store from the loopback API server
// holding 10,000 services and slices of 10 endpoints, answering in protobuf
// (streamed: one batch of objects decoded at a time) or JSON (whole lists),
// and reports the most the initial list had live at once (in a sync at GOGC
// 5, so that the GC sees it: the live heap after each cycle, sampled every
// millisecond) and, after the release that follows a sync at GOGC 100, the
// heap the store keeps (objects) and the spans holding it (objects plus
// partly used spans). All are relative to the heap before the store.
func BenchmarkStoreListMemory(b *testing.B) {
	for _, enc := range []string{"protobuf", "json"} {
		b.Run(enc, func(b *testing.B) {
			api := &fakeAPI{lists: apiLists(benchObjects(10_000, 10)), json: enc == "json", once: true}
			cs := api.start(b)
			var peak, objs, spans uint64
			for b.Loop() {
				peak, _, _ = listMemory(b, cs, 5)
				_, objs, spans = listMemory(b, cs, 100)
			}
			b.ReportMetric(float64(peak)/(1<<20), "MiB-peak")
			b.ReportMetric(float64(objs)/(1<<20), "MiB-kept")
			b.ReportMetric(float64(spans)/(1<<20), "MiB-spans")
		})
	}
}

// heapSpans reads the bytes of heap objects and of the spans holding them,
// and the live heap as of the last GC.
func heapSpans() (objects, spans, live uint64) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[0].Value.Uint64() + s[1].Value.Uint64(), s[2].Value.Uint64()
}

func listMemory(b *testing.B, api API, gcPercent int) (peak, objects, spans uint64) {
	debug.FreeOSMemory()
	objs0, spans0, live0 := heapSpans()
	defer debug.SetGCPercent(debug.SetGCPercent(gcPercent))
	s := NewStore(testConfig(), api, StoreOptions{})
	released := make(chan struct{})
	s.rel.free = func() { debug.FreeOSMemory(); close(released) }
	stop := make(chan struct{})
	sampled := make(chan uint64)
	go func() {
		var top uint64
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if _, _, live := heapSpans(); live > top {
				top = live
			}
			select {
			case <-stop:
				sampled <- top
				return
			case <-t.C:
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		b.Fatal(err)
	}
	select {
	case <-released:
	case <-ctx.Done():
		_, why := s.Ready()
		b.Fatalf("no release after sync: %s", why)
	}
	close(stop)
	peak = <-sampled - live0
	objs1, spans1, _ := heapSpans()
	if err := s.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	return peak, objs1 - objs0, spans1 - spans0
}

func BenchmarkService(b *testing.B) {
	s := loadedStore(b, 10_000, 10)
	b.ReportAllocs()
	for b.Loop() {
		if s.Service("ns-42", "svc-4242") == nil {
			b.Fatal("missing")
		}
	}
}

func BenchmarkServiceParallel(b *testing.B) {
	s := loadedStore(b, 10_000, 10)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if s.Service("ns-42", "svc-4242") == nil {
				b.Fatal("missing")
			}
		}
	})
}

func BenchmarkReverse(b *testing.B) {
	s := loadedStore(b, 10_000, 10)
	endpoint, clusterIP := netip.MustParseAddr("10.128.1.1"), netip.MustParseAddr("10.0.1.1")
	b.ReportAllocs()
	for b.Loop() {
		if s.Reverse(endpoint) == nil || s.Reverse(clusterIP) == nil {
			b.Fatal("missing")
		}
	}
}
