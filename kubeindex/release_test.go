package kubeindex

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// releaserRig drives a releaser's state machine by hand: tick at chosen
// times, no goroutine, no sleeping.
type releaserRig struct {
	r      *releaser
	synced bool
	events uint64
	freed  int
	now    time.Time
}

func newReleaserRig() *releaserRig {
	g := &releaserRig{now: time.Unix(1000, 0)}
	g.r = newReleaser(func() bool { return g.synced }, func() uint64 { return g.events }, nil)
	g.r.free = func() { g.freed++ }
	return g
}

// advance ticks every poll interval for d, bumping the handler events
// before each tick while busy.
func (g *releaserRig) advance(d time.Duration, busy bool) {
	for end := g.now.Add(d); g.now.Before(end); {
		g.now = g.now.Add(releasePoll)
		if busy {
			g.events++
		}
		g.r.tick(g.now)
	}
}

func TestReleaserSchedule(t *testing.T) {
	g := newReleaserRig()
	check := func(step string, want int) {
		t.Helper()
		if g.freed != want {
			t.Fatalf("%s: %d releases, want %d", step, g.freed, want)
		}
	}

	// The initial lists kick before the sync: they wait for it.
	g.r.listed()
	g.advance(time.Hour, true)
	check("before sync", 0)
	g.synced = true
	g.advance(releasePoll, false)
	check("at sync", 1)
	g.advance(time.Hour, false)
	check("idle after sync (the sync's own lists are covered)", 1)

	// A relist: released once the handlers are quiet.
	g.r.listed()
	g.advance(releaseQuiet-releasePoll, false)
	check("relist, handlers not quiet long enough", 1)
	g.advance(2*releasePoll, false)
	check("relist, handlers quiet", 2)

	// Flapping: relists every second for ten minutes release once a minute.
	start := g.freed
	for range 600 {
		g.r.listed()
		g.advance(time.Second, false)
	}
	if n := g.freed - start; n < 9 || n > 10 {
		t.Fatalf("600 relists in 10 minutes: %d releases, want one a minute", n)
	}
	g.advance(2*releaseEvery, false)
	if n := g.freed - start; n < 10 || n > 11 {
		t.Fatalf("after the flapping stopped: %d releases, want the last one pending released", n)
	}

	// Handlers that never go idle (a busy cluster) still get a release,
	// releaseMaxWait after the relist.
	g.advance(releaseEvery, false)
	before := g.freed
	g.r.listed()
	g.advance(releaseMaxWait-releasePoll, true)
	check("busy handlers, before the max wait", before)
	g.advance(2*releasePoll, true)
	check("busy handlers, at the max wait", before+1)
}

// TestStoreReleasesAfterSyncAndRelist runs a real Store: one release
// after the initial sync, one after a relist forced by an expired watch.
func TestStoreReleasesAfterSyncAndRelist(t *testing.T) {
	cs := fake.NewClientset(testNamespace("ns"), testService("ns", "web", "10.0.0.1"),
		testSlice("ns", "web-1", "web", discoveryv1.AddressTypeIPv4, tep("10.2.0.1")))
	fw := watch.NewFakeWithChanSize(4, false)
	var used atomic.Bool
	cs.PrependWatchReactor(resServices, func(k8stesting.Action) (bool, watch.Interface, error) {
		if used.CompareAndSwap(false, true) {
			return true, fw, nil
		}
		return false, nil, nil
	})
	m := NewMetrics(prometheus.NewRegistry())
	s := NewStore(testConfig(), apiOf(cs), StoreOptions{Metrics: m})
	var freed atomic.Int32
	s.rel.free = func() { freed.Add(1) }
	s.rel.every = 0 // no rate limit: the relist's release need not wait a minute
	runStore(t, s)
	storeEventually(t, "a release after the initial sync", func() bool { return freed.Load() == 1 })
	if got := metricValue(t, m.releases); got != 1 {
		t.Errorf("memory_releases_total = %v after sync, want 1", got)
	}

	fw.Error(&metav1.Status{Status: metav1.StatusFailure, Code: http.StatusGone, Reason: metav1.StatusReasonExpired})
	storeEventually(t, "a release after the relist", func() bool { return freed.Load() == 2 })
}
