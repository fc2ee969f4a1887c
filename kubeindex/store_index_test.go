package kubeindex

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// TestIndexReverseOracle applies a seeded random sequence of service and
// slice changes to an index and, after each one, checks the reverse maps
// against a brute-force recomputation from the published views.
func TestIndexReverseOracle(t *testing.T) {
	tr := newTestTransformer(false)
	x := newIndex(NewMetrics(nil), 1, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	pool := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "fd00::1", "fd00::2"}
	labels := []string{"", "", "a", "b"}
	svcs := []string{"s0", "s1", "s2"}
	slicesOf := map[string]*storedSlice{} // "ns/name" -> current

	for step := range 600 {
		ns := []string{"n0", "n1"}[rng.IntN(2)]
		svc := svcs[rng.IntN(len(svcs))]
		switch op := rng.IntN(10); {
		case op < 3: // service upsert or delete
			k := svcKey{ns, svc}
			if rng.IntN(4) == 0 {
				x.setService(k, nil)
				break
			}
			var o *corev1.Service
			switch rng.IntN(3) {
			case 0:
				o = testService(ns, svc, corev1.ClusterIPNone)
			case 1:
				o = testService(ns, svc, pool[rng.IntN(len(pool))])
			default:
				o = testExternal(ns, svc, "example.com")
			}
			st, _ := tr.service(o)
			x.setService(k, st.(*storedService))
		default: // slice upsert or delete
			name := fmt.Sprintf("%s-%d", svc, rng.IntN(2))
			key := ns + "/" + name
			old := slicesOf[key]
			if old != nil && rng.IntN(4) == 0 {
				x.setSlice(old, nil)
				delete(slicesOf, key)
				break
			}
			var eps []testEP
			for range rng.IntN(4) {
				e := tep(pool[rng.IntN(len(pool))]).host(labels[rng.IntN(len(labels))])
				if rng.IntN(5) == 0 {
					e = e.readyIs(false)
				}
				eps = append(eps, e)
			}
			owner := svc
			if old != nil && rng.IntN(3) > 0 {
				owner = old.service // usually keep the owner; sometimes move the slice
			}
			st, _ := tr.slice(testSlice(ns, name, owner, discoveryv1.AddressTypeIPv4, eps...))
			x.setSlice(old, st.(*storedSlice))
			slicesOf[key] = st.(*storedSlice)
		}
		checkReverse(t, step, x)
		checkViews(t, step, x, slicesOf)
		if got := x.counts[kServices]; got != len(x.views) {
			t.Fatalf("step %d: services counted %d, views %d", step, got, len(x.views))
		}
	}
}

func checkReverse(t *testing.T, step int, x *index) {
	t.Helper()
	want := map[netip.Addr][]ReverseName{}
	for _, v := range x.views {
		for _, it := range contributions(v) {
			want[it.addr] = append(want[it.addr], it.name)
		}
		if !slices.IsSortedFunc(v.Endpoints, func(a, b Endpoint) int { return a.Addr.Compare(b.Addr) }) {
			t.Fatalf("step %d: endpoints of %s/%s not sorted", step, v.Namespace, v.Name)
		}
	}
	for _, names := range want {
		slices.SortFunc(names, compareReverse)
	}
	got := map[netip.Addr][]ReverseName{}
	for a, p := range x.rev4 {
		got[netip.AddrFrom4(a)] = *p
	}
	for a, p := range x.rev6 {
		got[netip.AddrFrom16(a)] = *p
	}
	if len(got) != len(want) {
		t.Fatalf("step %d: reverse has %d addresses, want %d:\n got %v\nwant %v", step, len(got), len(want), got, want)
	}
	for a, w := range want {
		if g := got[a]; !slices.Equal(g, w) {
			t.Fatalf("step %d: reverse %s = %+v, want %+v", step, a, g, w)
		}
	}
}

// checkViews merges each view's slices the slow way: slices in name order,
// first occurrence of an address wins, then sorted by address.
func checkViews(t *testing.T, step int, x *index, slicesOf map[string]*storedSlice) {
	t.Helper()
	for k, v := range x.views {
		var names []string
		for _, sl := range slicesOf {
			if sl.namespace == k.ns && sl.service == k.name {
				names = append(names, sl.name)
			}
		}
		slices.Sort(names)
		seen := map[netip.Addr]bool{}
		var want []string
		if v.Kind != KindExternalName {
			var eps []Endpoint
			for _, n := range names {
				for _, e := range slicesOf[k.ns+"/"+n].endpoints {
					if !seen[e.Addr] {
						seen[e.Addr] = true
						eps = append(eps, e)
					}
				}
			}
			slices.SortFunc(eps, func(a, b Endpoint) int { return a.Addr.Compare(b.Addr) })
			for _, e := range eps {
				want = append(want, e.Addr.String()+" "+e.Label)
			}
		}
		if got := endpointsOf(v); !slices.Equal(got, want) {
			t.Fatalf("step %d: %s/%s endpoints %q, want %q", step, k.ns, k.name, got, want)
		}
	}
}

func TestIndexSerialClock(t *testing.T) {
	x := newIndex(NewMetrics(nil), 100, nil)
	clock := int64(50)
	x.now = func() time.Time { return time.Unix(clock, 0) }
	x.setNamespace("a", true)
	if got := x.serial.Load(); got != 100 {
		t.Errorf("serial moved to %d before the store was live", got)
	}
	x.live.Store(true)
	x.setNamespace("b", true)
	if got := x.serial.Load(); got != 101 {
		t.Errorf("serial = %d, want 101 (clock behind)", got)
	}
	clock = 500
	x.setNamespace("c", true)
	if got := x.serial.Load(); got != 500 {
		t.Errorf("serial = %d, want 500 (caught up with the clock)", got)
	}
	x.setNamespace("c", true) // no change, no bump
	if got := x.serial.Load(); got != 500 {
		t.Errorf("serial = %d after a no-op, want 500", got)
	}
}
