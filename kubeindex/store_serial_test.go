package kubeindex

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

func TestStoreSerial(t *testing.T) {
	v4 := discoveryv1.AddressTypeIPv4
	cs := fake.NewClientset(
		testService("ns", "web", "10.0.0.1"),
		testSlice("ns", "web-1", "web", v4, tep("10.2.0.1"), tep("10.2.0.9").readyIs(false)),
	)
	s := NewStore(testConfig(), apiOf(cs), StoreOptions{})
	s.idx.now = func() time.Time { return time.Unix(1, 0) } // serial steps of exactly 1
	runStore(t, s)
	svcs, eps := cs.CoreV1().Services("ns"), cs.DiscoveryV1().EndpointSlices("ns")
	before := s.Serial()
	if now := uint32(time.Now().Unix()); before > now || before < now-60 {
		t.Errorf("initial serial %d is not the store's start time (now %d): the initial sync must not bump it", before, now)
	}

	// Changes no answer shows: a resourceVersion/annotation-only update of
	// the service, a not-ready endpoint flapping while staying not ready.
	svc := testService("ns", "web", "10.0.0.1")
	svc.ResourceVersion, svc.Annotations = "2", map[string]string{"touched": "yes"}
	if _, err := svcs.Update(t.Context(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	sl := testSlice("ns", "web-1", "web", v4, tep("10.2.0.1"), tep("10.2.0.9").readyIs(false).host("x"))
	sl.ResourceVersion = "2"
	if _, err := eps.Update(t.Context(), sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Sentinels: each informer handles its events in order, so once these
	// visible changes are in, the invisible ones before them were handled.
	if _, err := svcs.Create(t.Context(), testService("ns", "sentinel", "10.0.0.2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sl2 := testSlice("ns", "web-2", "web", v4, tep("10.2.0.2"))
	if _, err := eps.Create(t.Context(), sl2, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	storeEventually(t, "sentinels", func() bool {
		return s.Service("ns", "sentinel") != nil && len(s.Service("ns", "web").Endpoints) == 2
	})
	if got := s.Serial(); got != before+2 {
		t.Fatalf("serial = %d after two invisible and two visible changes, want %d", got, before+2)
	}

	// An address change is visible.
	sl = testSlice("ns", "web-1", "web", v4, tep("10.2.0.3"), tep("10.2.0.9").readyIs(false))
	sl.ResourceVersion = "3"
	if _, err := eps.Update(t.Context(), sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	storeEventually(t, "serial bump on an address change", func() bool { return s.Serial() == before+3 })
	if got := endpointsOf(s.Service("ns", "web")); !slices.Equal(got, []string{"10.2.0.2 ", "10.2.0.3 "}) {
		t.Errorf("endpoints = %q", got)
	}
}

// TestStoreRelistRemovesMissedDeletes breaks the watch so two deletes are
// missed, then expires it (410): the relist must drop both objects.
func TestStoreRelistRemovesMissedDeletes(t *testing.T) {
	v4 := discoveryv1.AddressTypeIPv4
	cs := fake.NewClientset(
		testService("ns", "keep", "10.0.0.1"), testService("ns", "gone", "10.0.0.2"),
		testSlice("ns", "keep-1", "keep", v4, tep("10.2.0.1")), testSlice("ns", "keep-2", "keep", v4, tep("10.2.0.2")),
	)
	watchers := map[string]*watch.FakeWatcher{}
	for _, res := range []string{resServices, resEndpointSlices} {
		fw := watch.NewFakeWithChanSize(4, false)
		watchers[res] = fw
		var used atomic.Bool
		cs.PrependWatchReactor(res, func(k8stesting.Action) (bool, watch.Interface, error) {
			if used.CompareAndSwap(false, true) {
				return true, fw, nil // the first watch sees nothing of the tracker
			}
			return false, nil, nil
		})
	}
	s := startStore(t, testConfig(), apiOf(cs), nil)
	if s.Service("ns", "gone") == nil || len(s.Service("ns", "keep").Endpoints) != 2 {
		t.Fatal("initial state incomplete")
	}

	tr := cs.Tracker()
	if err := tr.Delete(schema.GroupVersionResource{Version: "v1", Resource: "services"}, "ns", "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Delete(discoveryv1.SchemeGroupVersion.WithResource("endpointslices"), "ns", "keep-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if s.Service("ns", "gone") == nil {
		t.Fatal("delete seen through a watch that should have missed it")
	}
	expired := &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusGone, Reason: metav1.StatusReasonExpired, Message: "too old resource version"}
	for _, fw := range watchers {
		fw.Error(expired)
	}
	storeEventually(t, "missed deletes healed by the relist", func() bool {
		v := s.Service("ns", "keep")
		return s.Service("ns", "gone") == nil && v != nil && slices.Equal(endpointsOf(v), []string{"10.2.0.1 "})
	})
	for _, a := range []string{"10.0.0.2", "10.2.0.2"} {
		if r := s.Reverse(netip.MustParseAddr(a)); r != nil {
			t.Errorf("Reverse(%s) = %+v after relist", a, r)
		}
	}
}

// TestStoreTombstones feeds deletes wrapped in DeletedFinalStateUnknown to
// the handlers directly, with a stored and with a raw object inside.
func TestStoreTombstones(t *testing.T) {
	s := NewStore(testConfig(), apiOf(fake.NewClientset()), StoreOptions{})
	svcH, sliceH, podH := s.serviceHandler(), s.sliceHandler(), s.podHandler()
	svc, _ := s.tr.service(testService("ns", "web", "10.0.0.1"))
	sl, _ := s.tr.slice(testSlice("ns", "web-1", "web", discoveryv1.AddressTypeIPv4, tep("10.2.0.1")))
	pod, _ := s.tr.pod(testPod("ns", "p", "10.3.0.1"))
	svcH.OnAdd(svc, false)
	sliceH.OnAdd(sl, false)
	podH.OnAdd(pod, false)
	if v := s.Service("ns", "web"); v == nil || len(v.Endpoints) != 1 || !s.HasPod("ns", netip.MustParseAddr("10.3.0.1")) {
		t.Fatal("adds not indexed")
	}
	sliceH.OnDelete(cache.DeletedFinalStateUnknown{Key: "ns/web-1", Obj: sl})
	if v := s.Service("ns", "web"); v == nil || len(v.Endpoints) != 0 || s.Reverse(netip.MustParseAddr("10.2.0.1")) != nil {
		t.Error("slice tombstone not applied")
	}
	svcH.OnDelete(cache.DeletedFinalStateUnknown{Key: "ns/web", Obj: testService("ns", "web", "10.0.0.1")})
	if s.Service("ns", "web") != nil || s.Reverse(netip.MustParseAddr("10.0.0.1")) != nil {
		t.Error("service tombstone holding a raw object not applied")
	}
	podH.OnDelete(cache.DeletedFinalStateUnknown{Key: "ns/p", Obj: pod})
	if s.HasPod("ns", netip.MustParseAddr("10.3.0.1")) {
		t.Error("pod tombstone not applied")
	}
	svcH.OnDelete(cache.DeletedFinalStateUnknown{Key: "ns/x"}) // no object: ignored, no panic
}

// TestStoreConcurrentReads reads while slices change (run with -race): a
// reader must always see one generation of a slice, never a mix.
func TestStoreConcurrentReads(t *testing.T) {
	v4 := discoveryv1.AddressTypeIPv4
	gen := func(g int) *discoveryv1.EndpointSlice {
		var eps []testEP
		for i := 1; i <= 8; i++ {
			eps = append(eps, tep(fmt.Sprintf("10.9.%d.%d", g, i)))
		}
		sl := testSlice("ns", "web-1", "web", v4, eps...)
		sl.ResourceVersion = fmt.Sprint(g + 1)
		return sl
	}
	s, cs := newFakeStore(t, testConfig(), testNamespace("ns"), testService("ns", "web", corev1.ClusterIPNone), gen(0))

	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Value
	for range 2 {
		wg.Go(func() {
			for i := 0; !stop.Load() && i < 10_000_000; i++ {
				v := s.Service("ns", "web")
				if v == nil || len(v.Endpoints) != 8 {
					bad.Store("view missing or partial")
					return
				}
				g := v.Endpoints[0].Addr.As4()[2]
				for _, e := range v.Endpoints {
					if e.Addr.As4()[2] != g {
						bad.Store("endpoints of two generations in one view")
						return
					}
				}
				_ = s.Reverse(v.Endpoints[i%8].Addr)
				_ = s.HasNamespace("ns")
				_ = s.Serial()
				if i%1000 == 0 {
					s.Walk(func(*ServiceView) bool { return true })
				}
			}
		})
	}
	eps := cs.DiscoveryV1().EndpointSlices("ns")
	for g := 1; g <= 20; g++ {
		if _, err := eps.Update(t.Context(), gen(g), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		want := netip.AddrFrom4([4]byte{10, 9, byte(g), 1})
		storeEventually(t, fmt.Sprintf("generation %d", g), func() bool {
			v := s.Service("ns", "web")
			return v != nil && len(v.Endpoints) > 0 && v.Endpoints[0].Addr == want
		})
	}
	stop.Store(true)
	wg.Wait()
	if b := bad.Load(); b != nil {
		t.Fatal(b)
	}
}
