package reliability

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/clusterdns/clusterdns/test/cluster"
)

// visibleBound is how long a change may take to show in DNS after the API
// server is back: client-go backs off up to 30 s between watch attempts
// while it is gone, so a long outage may need that much.
const visibleBound = 90 * time.Second

func svcFQDN(ns, name string) string { return name + "." + ns + ".svc.cluster.local." }

// endpointIP is the address of endpoint j of service i of a bulk load.
func endpointIP(i, j int) netip.Addr {
	k := i*16 + j
	return netip.AddrFrom4([4]byte{10, byte(100 + k>>16), byte(k >> 8), byte(k)})
}

var httpPort = []cluster.Port{{Name: "http", Port: 80}}

// createClusterIP creates a ClusterIP service and returns its address.
func createClusterIP(ctx context.Context, c *cluster.Cluster, ns, name string) (netip.Addr, error) {
	s, err := c.Client.CoreV1().Services(ns).Create(ctx, cluster.ClusterIPService(ns, name, httpPort...), metav1.CreateOptions{})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("create service %s/%s: %w", ns, name, err)
	}
	ip, err := netip.ParseAddr(s.Spec.ClusterIP)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("service %s/%s cluster IP %q: %w", ns, name, s.Spec.ClusterIP, err)
	}
	return ip, nil
}

// createHeadless creates a headless service with one EndpointSlice of ready
// endpoints at ips.
func createHeadless(ctx context.Context, c *cluster.Cluster, ns, name string, ips []netip.Addr) error {
	if _, err := c.Client.CoreV1().Services(ns).Create(ctx, cluster.HeadlessService(ns, name, httpPort...), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create service %s/%s: %w", ns, name, err)
	}
	var eps []cluster.Endpoint
	for _, ip := range ips {
		eps = append(eps, cluster.Endpoint{Addresses: []string{ip.String()}})
	}
	es := cluster.EndpointSlice(ns, name, name+"-1", discoveryv1.AddressTypeIPv4, httpPort, eps...)
	if _, err := c.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, es, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create endpointslice %s/%s: %w", ns, name, err)
	}
	return nil
}

// setEndpoints replaces the endpoints of a headless service made by
// createHeadless.
func setEndpoints(ctx context.Context, c *cluster.Cluster, ns, name string, ips []netip.Addr) error {
	es, err := c.Client.DiscoveryV1().EndpointSlices(ns).Get(ctx, name+"-1", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get endpointslice %s/%s-1: %w", ns, name, err)
	}
	ready := true
	es.Endpoints = nil
	for _, ip := range ips {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip.String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	if _, err := c.Client.DiscoveryV1().EndpointSlices(ns).Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update endpointslice %s/%s-1: %w", ns, name, err)
	}
	return nil
}

// expectations maps FQDNs to their A records; safe for concurrent use.
type expectations struct {
	mu sync.RWMutex
	m  map[string][]netip.Addr
}

func (e *expectations) set(name string, ips []netip.Addr) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string][]netip.Addr{}
	}
	e.m[name] = ips
}

func (e *expectations) get(name string) ([]netip.Addr, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	ips, ok := e.m[name]
	return ips, ok
}

func (e *expectations) names() []string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var out []string
	for n := range e.m {
		out = append(out, n)
	}
	return out
}

// bulk creates n services in ns with workers in parallel: even ones
// ClusterIP, odd ones headless with perSvc endpoints, and returns what each
// name must answer. It deletes them in parallel when t ends (before the
// namespace's own cleanup, which deletes one at a time).
func bulk(t *testing.T, c *cluster.Cluster, ns string, n, perSvc, workers int) *expectations {
	t.Helper()
	exp := &expectations{}
	err := parallel(t.Context(), n, workers, func(ctx context.Context, i int) error {
		name := fmt.Sprintf("s%05d", i)
		if i%2 == 0 {
			ip, err := createClusterIP(ctx, c, ns, name)
			exp.set(svcFQDN(ns, name), []netip.Addr{ip})
			return err
		}
		ips := make([]netip.Addr, perSvc)
		for j := range ips {
			ips[j] = endpointIP(i, j)
		}
		exp.set(svcFQDN(ns, name), ips)
		return createHeadless(ctx, c, ns, name, ips)
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := c.Client.DiscoveryV1().EndpointSlices(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			t.Errorf("cleanup: delete endpointslices: %v", err)
		}
		err := parallel(ctx, n, workers, func(ctx context.Context, i int) error {
			err := c.Client.CoreV1().Services(ns).Delete(ctx, fmt.Sprintf("s%05d", i), metav1.DeleteOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		})
		if err != nil {
			t.Errorf("cleanup: delete services: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("bulk create: %v", err)
	}
	return exp
}

// parallel runs f for 0..n-1 on workers goroutines; the first error stops
// the rest.
func parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// change is one API change and what DNS must answer once it is visible.
type change struct {
	what  string
	name  string // FQDN to ask
	apply func(context.Context) error
	check func(*dns.Msg) error
	at    time.Time // when apply returned
}

// applyAll applies the changes in order and fails t on an error.
func applyAll(t *testing.T, cs []*change) {
	t.Helper()
	for _, c := range cs {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		err := c.apply(ctx)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		c.at = time.Now()
	}
}

// visible waits for every change to show in DNS and returns the largest
// delay from the moment each was applied (or from since, when later).
func visible(t *testing.T, addr netip.AddrPort, cs []*change, since time.Time) time.Duration {
	t.Helper()
	var (
		mu    sync.Mutex
		worst time.Duration
		wg    sync.WaitGroup
	)
	for _, c := range cs {
		wg.Go(func() {
			_, err := waitAnswer(addr, c.name, dns.TypeA, c.check, visibleBound)
			from := c.at
			if since.After(from) {
				from = since
			}
			d := time.Since(from)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("%s: %v", c.what, err)
				return
			}
			worst = max(worst, d)
		})
	}
	wg.Wait()
	return worst
}

// createChange adds a ClusterIP service; deleteChange removes one;
// endpointsChange moves a headless service's endpoints.
func createChange(c *cluster.Cluster, ns, name string) *change {
	ch := &change{what: "create service " + name, name: svcFQDN(ns, name)}
	var ip netip.Addr
	ch.apply = func(ctx context.Context) (err error) { ip, err = createClusterIP(ctx, c, ns, name); return err }
	ch.check = func(r *dns.Msg) error { return sameA(r, []netip.Addr{ip}) }
	return ch
}

func deleteChange(c *cluster.Cluster, ns, name string) *change {
	return &change{what: "delete service " + name, name: svcFQDN(ns, name),
		apply: func(ctx context.Context) error {
			return c.Client.CoreV1().Services(ns).Delete(ctx, name, metav1.DeleteOptions{})
		},
		check: func(r *dns.Msg) error { return nxCheck(Question{}, r) },
	}
}

func endpointsChange(c *cluster.Cluster, ns, name string, ips []netip.Addr) *change {
	return &change{what: "move endpoints of " + name, name: svcFQDN(ns, name),
		apply: func(ctx context.Context) error { return setEndpoints(ctx, c, ns, name, ips) },
		check: func(r *dns.Msg) error { return sameA(r, ips) },
	}
}

// readyWatch polls a child's /ready every 100 ms until stopped and counts
// the answers other than 200, and apart the polls that got no answer
// within 2 s (a starved machine, not a verdict of the server).
func readyWatch(t *testing.T, c *Child) (stop func() readiness) {
	var r readiness
	done := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				r.polls++
				switch httpStatus(c.URL("ready")) {
				case http.StatusOK:
				case 0:
					r.noAnswer++
				default:
					r.notReady++
				}
			}
		}
	}()
	var once sync.Once
	stop = func() readiness {
		once.Do(func() { close(quit) })
		<-done
		return r
	}
	t.Cleanup(func() { stop() })
	return stop
}

// readiness is what readyWatch saw.
type readiness struct{ polls, notReady, noAnswer int }

func (r readiness) String() string {
	return fmt.Sprintf("/ready non-200 in %d of %d polls (%d unanswered)", r.notReady, r.polls, r.noAnswer)
}
