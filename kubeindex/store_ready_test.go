package kubeindex

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// metricValue reads a gauge or counter value, or a histogram's count.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	switch {
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Histogram != nil:
		return float64(d.Histogram.GetSampleCount())
	}
	t.Fatalf("unexpected metric %v", &d)
	return 0
}

func TestStoreReadyReasons(t *testing.T) {
	cs := fake.NewClientset(testService("ns", "web", "10.0.0.1"))
	var deny atomic.Bool
	deny.Store(true)
	cs.PrependReactor("list", "endpointslices", func(k8stesting.Action) (bool, runtime.Object, error) {
		if deny.Load() {
			gr := schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}
			return true, nil, apierrors.NewForbidden(gr, "", errors.New("RBAC: clusterdns may not list"))
		}
		return false, nil, nil
	})
	m := NewMetrics(prometheus.NewRegistry())
	s := NewStore(testConfig(), apiOf(cs), StoreOptions{Metrics: m})
	if ok, why := s.Ready(); ok || why != "kubeindex: not started" {
		t.Errorf("Ready before Start = %v %q", ok, why)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Stop(context.Background()) }()

	var why string
	// Services list on their own schedule: wait until they are in and only
	// the forbidden slices remain, however the two informers interleave.
	storeEventually(t, "services synced and a forbidden reason for endpointslices", func() bool {
		var ok bool
		ok, why = s.Ready()
		return !ok && strings.Contains(why, "endpointslices: forbidden: ") && !strings.Contains(why, "services")
	})
	if strings.Contains(why, "services") || !strings.Contains(why, "RBAC: clusterdns may not list") {
		t.Errorf("reason %q: want only endpointslices, with the server's message", why)
	}
	if s.Synced() {
		t.Error("Synced with endpointslices unlisted")
	}
	if got := metricValue(t, m.watchErrors.WithLabelValues(resEndpointSlices, "forbidden")); got < 1 {
		t.Errorf("watch_errors_total{endpointslices,forbidden} = %v", got)
	}
	if s.Service("ns", "web") == nil {
		t.Error("services must be indexed even while slices are forbidden")
	}

	deny.Store(false) // RBAC fixed: the reflector's retry lists
	// Up to 10 s: the reflector's jittered backoff may already be at 3.2 s.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if !s.WaitSynced(ctx) {
		t.Fatal("not synced 10s after the list was allowed again")
	}
	if ok, why := s.Ready(); !ok || why != "" {
		t.Errorf("Ready after sync = %v %q", ok, why)
	}
}

// TestStoreWatchErrorAfterSync: a failing watch is counted, and the synced
// store stays ready and keeps its state.
func TestStoreWatchErrorAfterSync(t *testing.T) {
	cs := fake.NewClientset(testService("ns", "web", "10.0.0.1"))
	var calls atomic.Int32
	cs.PrependWatchReactor(resServices, func(k8stesting.Action) (bool, watch.Interface, error) {
		if calls.Add(1) == 1 {
			return true, nil, apierrors.NewUnauthorized("token expired")
		}
		return false, nil, nil
	})
	m := NewMetrics(prometheus.NewRegistry())
	s := startStore(t, testConfig(), apiOf(cs), m)
	storeEventually(t, "unauthorized watch counted", func() bool {
		return metricValue(t, m.watchErrors.WithLabelValues(resServices, "unauthorized")) == 1
	})
	if ok, why := s.Ready(); !ok || s.Service("ns", "web") == nil {
		t.Errorf("after a watch error: Ready = %v %q, service present = %v", ok, why, s.Service("ns", "web") != nil)
	}
}

func TestWatchErrorReason(t *testing.T) {
	gr := schema.GroupResource{Resource: "services"}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, c := range []struct {
		err  error
		want string
	}{
		{apierrors.NewForbidden(gr, "", errors.New("no")), "forbidden"},
		{apierrors.NewUnauthorized("no"), "unauthorized"},
		{fmt.Errorf("Get https://10.96.0.1:443: %w", refused), "connection_refused"},
		{fmt.Errorf("list: %w", context.DeadlineExceeded), "timeout"},
		{&net.DNSError{Err: "i/o timeout", IsTimeout: true}, "timeout"},
		{apierrors.NewTimeoutError("slow", 1), "timeout"},
		{apierrors.NewResourceExpired("too old"), "expired"},
		{io.EOF, "closed"},
		{apierrors.NewNotFound(gr, ""), "not_found"},
		{errors.New("boom"), "other"},
	} {
		if got := watchErrorReason(c.err); got != c.want {
			t.Errorf("watchErrorReason(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// noWatchListSemantics hides the fake clientset's "I cannot stream lists"
// marker, so the reflector tries a streaming list first.
type noWatchListSemantics struct{ kubernetes.Interface }

// TestWatchListFallback: against a server that rejects sendInitialEvents,
// the informers fall back to a plain list and still sync.
func TestWatchListFallback(t *testing.T) {
	cs := fake.NewClientset(testNamespace("ns"), testService("ns", "web", "10.0.0.1"),
		testSlice("ns", "web-1", "web", discoveryv1.AddressTypeIPv4, tep("10.2.0.1")))
	var streamed atomic.Int32
	cs.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		if wa, ok := a.(k8stesting.WatchActionImpl); ok && wa.GetListOptions().SendInitialEvents != nil {
			streamed.Add(1)
			return true, nil, apierrors.NewBadRequest("sendInitialEvents is not supported")
		}
		return false, nil, nil
	})
	s := startStore(t, testConfig(), apiOf(noWatchListSemantics{cs}), nil)
	if streamed.Load() == 0 {
		t.Error("no streaming list attempted: WatchListClient is off")
	}
	if v := s.Service("ns", "web"); v == nil || len(v.Endpoints) != 1 || !s.HasNamespace("ns") {
		t.Fatal("index incomplete after the list fallback")
	}
	if _, err := cs.CoreV1().Services("ns").Create(t.Context(), testService("ns", "new", "10.0.0.2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	storeEventually(t, "watch after the fallback list", func() bool { return s.Service("ns", "new") != nil })
}

func TestStoreLifecycleAndSharedMetrics(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	services := m.objects.WithLabelValues(resServices)
	endpoints := m.objects.WithLabelValues(kindEndpoints)
	v4 := discoveryv1.AddressTypeIPv4

	a := NewStore(testConfig(), apiOf(fake.NewClientset(testService("ns", "a", "10.0.0.1"),
		testSlice("ns", "a-1", "a", v4, tep("10.2.0.1"), tep("10.2.0.2")))), StoreOptions{Metrics: m})
	b := NewStore(testConfig(), apiOf(fake.NewClientset(testService("ns", "b", "10.0.0.2"), testService("ns", "c", "10.0.0.3"))),
		StoreOptions{Metrics: m})
	for _, s := range []*Store{a, b} {
		for range 2 { // idempotent
			if err := s.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		ok := s.WaitSynced(ctx)
		cancel()
		if !ok {
			t.Fatal("not synced")
		}
	}
	if got := metricValue(t, services); got != 3 {
		t.Errorf("objects{services} with two stores = %v, want 3", got)
	}
	if got := metricValue(t, endpoints); got != 2 {
		t.Errorf("objects{endpoints} = %v, want 2", got)
	}
	if got := metricValue(t, m.serial); got != float64(b.Serial()) {
		t.Errorf("serial gauge = %v, want the last store's %d", got, b.Serial())
	}
	for range 2 {
		if err := a.Stop(t.Context()); err != nil {
			t.Fatalf("Stop: %v", err)
		}
	}
	if got := metricValue(t, services); got != 2 {
		t.Errorf("objects{services} after stopping one store = %v, want 2", got)
	}
	if a.Service("ns", "a") == nil {
		t.Error("a stopped store must keep answering from its last state")
	}
	if err := a.Start(t.Context()); !errors.Is(err, ErrStoreStopped) {
		t.Errorf("Start after Stop = %v, want ErrStoreStopped", err)
	}
	if err := b.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, services) + metricValue(t, endpoints); got != 0 {
		t.Errorf("objects gauges after stopping both = %v, want 0", got)
	}
	if err := NewStore(testConfig(), apiOf(fake.NewClientset()), StoreOptions{}).Stop(t.Context()); err != nil {
		t.Errorf("Stop before Start = %v", err)
	}
}

func TestStoreEventMetrics(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	cs := fake.NewClientset(testService("ns", "web", corev1.ClusterIPNone))
	startStore(t, testConfig(), apiOf(cs), m)
	sl := testSlice("ns", "web-1", "web", discoveryv1.AddressTypeIPv4, tep("10.2.0.1"))
	sl.Annotations = map[string]string{corev1.EndpointsLastChangeTriggerTime: time.Now().Add(-time.Second).Format(time.RFC3339Nano)}
	if _, err := cs.DiscoveryV1().EndpointSlices("ns").Create(t.Context(), sl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	lat := m.latency.WithLabelValues(resEndpointSlices).(prometheus.Metric)
	storeEventually(t, "programming latency observed", func() bool { return metricValue(t, lat) == 1 })
	if ts := metricValue(t, m.lastEvent.WithLabelValues(resEndpointSlices)); ts < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last_event_timestamp_seconds{endpointslices} = %v", ts)
	}
	if n := m.lastEventNanos[resServices].Load(); n == 0 {
		t.Error("no last event recorded for services")
	}
	if got := metricValue(t, m.objects.WithLabelValues(resEndpointSlices)); got != 1 {
		t.Errorf("objects{endpointslices} = %v, want 1", got)
	}
}

// TestLookupAllocs: the per-query lookups allocate nothing.
func TestLookupAllocs(t *testing.T) {
	s := loadedStore(t, 50, 4)
	a := netip.MustParseAddr("10.128.0.1")
	ip := netip.MustParseAddr("10.0.0.1")
	if n := testing.AllocsPerRun(100, func() {
		_ = s.Service("ns-1", "svc-1")
		_ = s.Reverse(a)
		_ = s.Reverse(ip)
		_ = s.HasNamespace("ns-1")
		_ = s.HasPod("ns-1", a)
		_ = s.Serial()
		_ = s.Synced()
	}); n != 0 {
		t.Errorf("lookups allocate %v times per run, want 0", n)
	}
}
