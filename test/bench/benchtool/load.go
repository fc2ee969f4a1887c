package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Objects the loader creates. Services are spread over namespaces of about
// 100 each; every fifth is headless. Endpoints are spread evenly over all
// Services (a real cluster has endpoints behind ClusterIP Services too, and
// both servers hold them), at most maxSliceEndpoints per EndpointSlice, with
// the nodeName and targetRef real slices carry, so the bytes each server
// decodes at list time are realistic.
const (
	benchLabel         = "clusterdns.bench"
	servicesPerNS      = 100
	headlessEvery      = 5
	maxSliceEndpoints  = 100
	sentinelService    = "sentinel"
	loadRequestTimeout = 30 * time.Second
)

var (
	// endpointBase is the first endpoint address; 10.128.0.0/9 holds
	// 8 million, far more than any run creates.
	endpointBase = netip.MustParseAddr("10.128.0.0")
	sentinelIP   = netip.MustParseAddr("10.127.255.254")
)

// benchNamespace names namespace i.
func benchNamespace(i int) string { return fmt.Sprintf("bench-%03d", i) }

// benchPorts are the ports of every Service; SRV queries ask for _http._tcp.
var benchPorts = []corev1.ServicePort{
	{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
	{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
}

// clientFor builds a clientset from kubeconfig with a raised rate limit:
// client-go's 5 QPS would make loading 10,000 Services take half an hour.
func clientFor(kubeconfig string, qps float32, burst int) (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = qps, burst
	cfg.UserAgent = "clusterdns-bench"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("clientset: %w", err)
	}
	return cs, nil
}

func addIP(base netip.Addr, n int) netip.Addr {
	b := base.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func newService(ns, name string, headless bool) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{benchLabel: "true"}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: benchPorts},
	}
	if headless {
		s.Spec.ClusterIP = corev1.ClusterIPNone
	}
	return s
}

// newSlice returns EndpointSlice name of Service service with one ready
// endpoint per address.
func newSlice(ns, service, name string, addrs []netip.Addr) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Name:      name,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: service,
				discoveryv1.LabelManagedBy:   "clusterdns-bench",
				benchLabel:                   "true",
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, p := range benchPorts {
		name, port, proto := p.Name, p.Port+8000, p.Protocol
		es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: &name, Port: &port, Protocol: &proto})
	}
	ready := true
	for _, a := range addrs {
		node := fmt.Sprintf("node-%03d", a.As4()[3]%100)
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{a.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			NodeName:   &node,
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: service + "-" + a.String()},
		})
	}
	return es
}

// loadJob is one Service with its endpoints [first, first+count).
type loadJob struct {
	ns, name     string
	headless     bool
	first, count int
}

// serviceFor returns the job of Service i out of nsvc holding neps
// endpoints between them, spread as evenly as they divide.
func serviceFor(i, nsvc, neps int) loadJob {
	per, extra := neps/nsvc, neps%nsvc
	count := per
	if i < extra {
		count++
	}
	return loadJob{
		ns: benchNamespace(i / servicesPerNS), name: fmt.Sprintf("s%d", i), headless: i%headlessEvery == 0,
		first: i*per + min(i, extra), count: count,
	}
}

// runLoad is the "load" command.
func runLoad(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "admin kubeconfig of the test control plane")
	nsvc := fs.Int("services", 1000, "Services to create")
	neps := fs.Int("endpoints", 10000, "endpoints to create, spread over the Services")
	npods := fs.Int("pods", 0, "running Pods to create, spread over the Services' namespaces")
	workers := fs.Int("workers", 16, "concurrent API clients")
	qps := fs.Float64("qps", 1000, "client rate limit")
	timeout := fs.Duration("timeout", 30*time.Minute, "give up after this long")
	results := fs.String("results", "", "results file to record the object counts in (optional)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *nsvc < 1 || *neps < 0 || *npods < 0 || *npods > maxPods || *workers < 1 {
		return fmt.Errorf("need services >= 1, endpoints >= 0, 0 <= pods <= %d, workers >= 1", maxPods)
	}
	cs, err := clientFor(*kubeconfig, float32(*qps), int(*qps)*2)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	start := time.Now()

	nns := (*nsvc + servicesPerNS - 1) / servicesPerNS
	for i := range nns {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNamespace(i), Labels: map[string]string{benchLabel: "true"}}}
		if err := create(ctx, func(ctx context.Context) error {
			_, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
			return err
		}); err != nil {
			return fmt.Errorf("create namespace %s: %w", ns.Name, err)
		}
	}

	if err := parallel(ctx, *workers, *nsvc, 1000, "services", func(ctx context.Context, i int) error {
		return loadOne(ctx, cs, serviceFor(i, *nsvc, *neps))
	}); err != nil {
		return err
	}
	svcDone := time.Now()
	fmt.Fprintf(os.Stderr, "load: %d services, %d endpoints in %s\n", *nsvc, *neps, svcDone.Sub(start).Round(time.Millisecond))
	if *npods > 0 {
		if err := parallel(ctx, *workers, *npods, 5000, "pods", func(ctx context.Context, j int) error {
			return loadPod(ctx, cs, podFor(j, *nsvc))
		}); err != nil {
			return err
		}
		d := time.Since(svcDone)
		fmt.Fprintf(os.Stderr, "load: %d pods in %s (%.0f/s)\n", *npods, d.Round(time.Millisecond), float64(*npods)/d.Seconds())
		// After every other Pod: a server answering this one's name has
		// listed them all.
		if err := loadPod(ctx, cs, sentinelPod(sentinelService, sentinelPodIP)); err != nil {
			return err
		}
	}
	// Created last, after every worker finished: a server that answers the
	// sentinel's address has listed everything before it.
	if err := loadSentinel(ctx, cs); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "load: %d services, %d endpoints, %d pods in %d namespaces in %s\n",
		*nsvc, *neps, *npods, nns, time.Since(start).Round(time.Millisecond))
	if *results == "" {
		return nil
	}
	return appendRecord(*results, record{Kind: "objects", Impl: "kube-apiserver",
		Objects: map[string]int64{"services": int64(*nsvc), "endpoints": int64(*neps), "pods": int64(*npods)}})
}

// parallel runs do(i) for every i in [0, n) on workers goroutines, stopping
// at the first error, and prints progress every `every` completions.
func parallel(ctx context.Context, workers, n, every int, what string, do func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	jobs := make(chan int)
	var done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				if err := do(ctx, i); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					continue
				}
				if d := done.Add(1); d%int64(every) == 0 {
					fmt.Fprintf(os.Stderr, "load: %d/%d %s (%s)\n", d, n, what, time.Since(start).Round(time.Second))
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("load %s: %w", what, err)
	}
	return nil
}

func loadOne(ctx context.Context, cs kubernetes.Interface, j loadJob) error {
	svc := newService(j.ns, j.name, j.headless)
	if err := create(ctx, func(ctx context.Context) error {
		_, err := cs.CoreV1().Services(j.ns).Create(ctx, svc, metav1.CreateOptions{})
		return err
	}); err != nil {
		return fmt.Errorf("create service %s/%s: %w", j.ns, j.name, err)
	}
	for k := 0; k*maxSliceEndpoints < j.count; k++ {
		n := min(maxSliceEndpoints, j.count-k*maxSliceEndpoints)
		addrs := make([]netip.Addr, n)
		for e := range addrs {
			addrs[e] = addIP(endpointBase, j.first+k*maxSliceEndpoints+e)
		}
		es := newSlice(j.ns, j.name, fmt.Sprintf("%s-%d", j.name, k), addrs)
		if err := create(ctx, func(ctx context.Context) error {
			_, err := cs.DiscoveryV1().EndpointSlices(j.ns).Create(ctx, es, metav1.CreateOptions{})
			return err
		}); err != nil {
			return fmt.Errorf("create endpointslice %s/%s: %w", j.ns, es.Name, err)
		}
	}
	return nil
}

// loadSentinel creates the headless Service "sentinel" in the first
// namespace with one endpoint, sentinelIP.
func loadSentinel(ctx context.Context, cs kubernetes.Interface) error {
	return createHeadless(ctx, cs, benchNamespace(0), sentinelService, sentinelIP)
}

// createHeadless creates headless Service ns/name with one endpoint at ip.
func createHeadless(ctx context.Context, cs kubernetes.Interface, ns, name string, ip netip.Addr) error {
	svc := newService(ns, name, true)
	if err := create(ctx, func(ctx context.Context) error {
		_, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
		return err
	}); err != nil {
		return fmt.Errorf("create service %s/%s: %w", ns, name, err)
	}
	es := newSlice(ns, name, name, []netip.Addr{ip})
	if err := create(ctx, func(ctx context.Context) error {
		_, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, es, metav1.CreateOptions{})
		return err
	}); err != nil {
		return fmt.Errorf("create endpointslice %s/%s: %w", ns, name, err)
	}
	return nil
}

// create runs one create call with a per-request timeout; AlreadyExists is
// success, so a rerun against the same control plane completes the set.
func create(ctx context.Context, call func(context.Context) error) error {
	if err := withTimeout(ctx, call); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// withTimeout runs one API call with the per-request timeout.
func withTimeout(ctx context.Context, call func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, loadRequestTimeout)
	defer cancel()
	return call(ctx)
}
