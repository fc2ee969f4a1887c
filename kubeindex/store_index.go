package kubeindex

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type svcKey struct{ ns, name string }

type podKey struct {
	ns   string
	addr netip.Addr
}

// index is the queryable state behind a Store.
//
// Concurrency: one RWMutex guards the read maps, and readers hold it for a
// single map lookup (no allocation, tens of nanoseconds). Writers (the
// informers' handler goroutines, serialised by wmu) do all the work off the
// read path: merge slices into a fresh immutable ServiceView, compute the new
// reverse entries, then take mu only to store a handful of map entries.
// Copy-on-write maps behind atomic pointers were rejected because every
// endpoint flap would copy a 100,000-entry map; sharding can come later if
// RLock contention ever shows up on many-core nodes. Values handed to readers
// (views, reverse slices) are never mutated after they are published.
//
// Memory: the reverse map has an entry per endpoint address, so it is split
// by family with pointer-free array keys (16 bytes a slot for IPv4 instead
// of 48 with netip.Addr keys and slice values), and the owner lists of a
// service's unlabeled endpoints all share one slice.
type index struct {
	mu     sync.RWMutex
	views  map[svcKey]*ServiceView     // guarded by mu
	rev4   map[[4]byte]*[]ReverseName  // guarded by mu
	rev6   map[[16]byte]*[]ReverseName // guarded by mu
	nss    map[string]struct{}         // guarded by mu; exposed namespaces
	pods   map[podKey]uint32           // guarded by mu; pods per (ns, IP)
	serial atomic.Uint32
	// live is set once the store has synced: changes before that are part
	// of the initial state, which no negative answer has shown yet.
	live atomic.Bool

	// wmu serialises writers; it guards the fields below and is the only
	// lock under which the read maps above are modified (always also under
	// mu), so writers may read those maps holding wmu alone.
	wmu    sync.Mutex
	slices map[svcKey][]*storedSlice // per owning service, sorted by name; modified in place
	counts [numKinds]int             // what this index added to the objects gauges
	closed bool                      // set by Store.Stop: ignore late events

	allowed map[string]bool // exposed namespaces; nil = all. Immutable.
	gauges  [numKinds]prometheus.Gauge
	serialG prometheus.Gauge
	now     func() time.Time // the serial's clock; tests replace it before Start
}

// Object kinds counted in the objects gauge.
const (
	kServices = iota
	kSlices
	kEndpoints
	kNamespaces
	kPods
	numKinds
)

var kindNames = [numKinds]string{resServices, resEndpointSlices, kindEndpoints, resNamespaces, resPods}

func newIndex(m *Metrics, serial uint32, allowed map[string]bool) *index {
	x := &index{
		views:   make(map[svcKey]*ServiceView),
		rev4:    make(map[[4]byte]*[]ReverseName),
		rev6:    make(map[[16]byte]*[]ReverseName),
		nss:     make(map[string]struct{}),
		pods:    make(map[podKey]uint32),
		slices:  make(map[svcKey][]*storedSlice),
		allowed: allowed,
		serialG: m.serial,
		now:     time.Now,
	}
	for k, n := range kindNames {
		x.gauges[k] = m.objects.WithLabelValues(n)
	}
	x.serial.Store(serial)
	m.serial.Set(float64(serial))
	return x
}

func (x *index) exposed(ns string) bool { return x.allowed == nil || x.allowed[ns] }

// count adds d objects of kind k; wmu held.
func (x *index) count(k, d int) {
	if d != 0 {
		x.counts[k] += d
		x.gauges[k].Add(float64(d))
	}
}

// bump records an answer-visible change; wmu held. The serial is kept at
// least at the current Unix time, so that a restarted or reloaded store,
// which starts from the clock, does not go back unless changes outran the
// clock (more than one a second on average).
func (x *index) bump() {
	if !x.live.Load() {
		return
	}
	n := max(x.serial.Load()+1, uint32(x.now().Unix()))
	x.serial.Store(n)
	x.serialG.Set(float64(n))
}

// close withdraws this index's objects from the gauges and makes it ignore
// any later event.
func (x *index) close() {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	for k := range x.counts {
		x.count(k, -x.counts[k])
	}
	x.closed = true
}

// setService adds, replaces (st non-nil) or removes (st nil) service k.
func (x *index) setService(k svcKey, st *storedService) {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	if x.closed || !x.exposed(k.ns) {
		return
	}
	var svc *Service
	if st != nil && !st.skip {
		svc = &st.Service
	}
	x.rebuild(k, svc)
}

// current is the service part of k's view: the view is the only copy of a
// service the index keeps (the informer cache holds the other).
func (x *index) current(k svcKey) *Service {
	if v := x.views[k]; v != nil {
		return &v.Service
	}
	return nil
}

// setSlice applies an add, update (both non-nil) or delete (new nil) of an
// EndpointSlice.
func (x *index) setSlice(old, new *storedSlice) {
	if old != nil && old == new {
		return // a relist of an unchanged slice (see reuseUnchanged)
	}
	x.wmu.Lock()
	defer x.wmu.Unlock()
	if x.closed {
		return
	}
	if old != nil && old.service != "" && x.exposed(old.namespace) {
		k := svcKey{old.namespace, old.service}
		if list, i := x.findSlice(k, old.name); i >= 0 {
			x.count(kSlices, -1)
			x.count(kEndpoints, -len(list[i].endpoints))
			list = slices.Delete(list, i, i+1)
			if len(list) == 0 {
				delete(x.slices, k)
			} else {
				x.slices[k] = list
			}
			if new == nil || new.service != old.service {
				x.rebuild(k, x.current(k))
			}
		}
	}
	if new == nil || new.service == "" || !x.exposed(new.namespace) {
		return
	}
	k := svcKey{new.namespace, new.service}
	list, i := x.findSlice(k, new.name)
	if i >= 0 { // not announced as an update (e.g. relist), replace anyway
		x.count(kEndpoints, -len(list[i].endpoints))
		list = slices.Delete(list, i, i+1)
	} else {
		x.count(kSlices, 1)
	}
	x.count(kEndpoints, len(new.endpoints))
	pos, _ := slices.BinarySearchFunc(list, new.name, func(s *storedSlice, n string) int { return strings.Compare(s.name, n) })
	x.slices[k] = slices.Insert(list, pos, new)
	x.rebuild(k, x.current(k))
}

func (x *index) findSlice(k svcKey, name string) ([]*storedSlice, int) {
	list := x.slices[k]
	i, ok := slices.BinarySearchFunc(list, name, func(s *storedSlice, n string) int { return strings.Compare(s.name, n) })
	if !ok {
		return list, -1
	}
	return list, i
}

// rebuild recomputes the view of service k from svc (nil: no service) and
// its slices, and publishes it when it differs in anything an answer shows;
// wmu held.
func (x *index) rebuild(k svcKey, svc *Service) {
	old := x.views[k]
	nv := buildView(svc, x.slices[k])
	if viewEqual(old, nv) {
		return
	}
	changes := x.reverseChanges(k, old, nv)
	x.mu.Lock()
	if nv == nil {
		delete(x.views, k)
	} else {
		x.views[k] = nv
	}
	for _, c := range changes {
		x.setReverse(c.addr, c.names)
	}
	x.mu.Unlock()
	x.count(kServices, b2i(nv != nil)-b2i(old != nil))
	x.bump()
}

func buildView(svc *Service, list []*storedSlice) *ServiceView {
	if svc == nil {
		return nil
	}
	v := &ServiceView{Service: *svc}
	if svc.Kind == KindExternalName {
		return v // nothing lives below an ExternalName
	}
	total, nonEmpty := 0, 0
	for _, sl := range list {
		if len(sl.endpoints) > 0 {
			total += len(sl.endpoints)
			nonEmpty++
		}
	}
	switch nonEmpty {
	case 0:
	case 1: // the common case: share the slice's endpoints, no copy
		for _, sl := range list {
			if len(sl.endpoints) > 0 {
				v.Endpoints = sl.endpoints
			}
		}
	default: // slices in name order, so the first label wins across slices
		eps := make([]Endpoint, 0, total)
		for _, sl := range list {
			eps = append(eps, sl.endpoints...)
		}
		v.Endpoints = sortDedup(eps)
	}
	return v
}

func viewEqual(a, b *ServiceView) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Namespace != b.Namespace || a.Name != b.Name || a.Kind != b.Kind || a.ExternalName != b.ExternalName ||
		!slices.Equal(a.ClusterIPs, b.ClusterIPs) || !slices.Equal(a.Ports, b.Ports) || len(a.Endpoints) != len(b.Endpoints) {
		return false
	}
	for i := range a.Endpoints {
		ea, eb := &a.Endpoints[i], &b.Endpoints[i]
		if ea.Addr != eb.Addr || ea.Label != eb.Label || !slices.Equal(ea.Ports, eb.Ports) {
			return false
		}
	}
	return true
}

// setNamespace adds (present) or removes a namespace.
func (x *index) setNamespace(name string, present bool) {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	if x.closed || !x.exposed(name) {
		return
	}
	if _, had := x.nss[name]; had == present {
		return
	}
	x.mu.Lock()
	if present {
		x.nss[name] = struct{}{}
	} else {
		delete(x.nss, name)
	}
	x.mu.Unlock()
	x.count(kNamespaces, b2i(present)-b2i(!present))
	x.bump()
}

// setPod applies an add, update or delete (new nil) of a pod. Several pods
// may share an IP (hostNetwork), hence the reference counts.
func (x *index) setPod(old, new *storedPod) {
	if old != nil && old == new {
		return
	}
	x.wmu.Lock()
	defer x.wmu.Unlock()
	if x.closed {
		return
	}
	var oldIPs, newIPs [2]netip.Addr
	if old != nil && x.exposed(old.namespace) {
		oldIPs = old.ips
		x.count(kPods, -1)
	}
	if new != nil && x.exposed(new.namespace) {
		newIPs = new.ips
		x.count(kPods, 1)
	}
	changed := false
	x.mu.Lock()
	for _, a := range oldIPs {
		if a.IsValid() && !slices.Contains(newIPs[:], a) {
			k := podKey{old.namespace, a}
			if n := x.pods[k]; n <= 1 {
				delete(x.pods, k)
				changed = true
			} else {
				x.pods[k] = n - 1
			}
		}
	}
	for _, a := range newIPs {
		if a.IsValid() && !slices.Contains(oldIPs[:], a) {
			k := podKey{new.namespace, a}
			n := x.pods[k]
			x.pods[k] = n + 1
			changed = changed || n == 0
		}
	}
	x.mu.Unlock()
	if changed {
		x.bump()
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
