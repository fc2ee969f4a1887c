package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// DNS programming latency: the time from an API write returning to the
// first answer that reflects it, polled on every server at once, so all see
// the same change stream. Half the changes create a ClusterIP Service (a new
// name appears), half move an endpoint of a headless Service to a new address
// (an existing answer changes).
const (
	proglatNamespace = "bench-proglat"
	proglatInFlight  = 32 // API writes in flight at once
	pollTimeout      = 500 * time.Millisecond
)

var (
	poolBase   = netip.MustParseAddr("10.64.0.0") // initial pool endpoints
	changeBase = netip.MustParseAddr("10.65.0.0") // one new address per change
)

// dnsTarget is a server under test.
type dnsTarget struct{ name, addr string }

// serverFlag defines the repeatable -server name=127.0.0.1:port flag,
// appending each to targets.
func serverFlag(fs *flag.FlagSet, targets *[]dnsTarget) {
	fs.Func("server", "name=127.0.0.1:port of a server to query (repeatable)", func(s string) error {
		n, a, ok := strings.Cut(s, "=")
		if !ok {
			return errors.New("want name=addr")
		}
		if err := loopbackOnly(a); err != nil {
			return err
		}
		*targets = append(*targets, dnsTarget{n, a})
		return nil
	})
}

// answerCheck reports whether a reply reflects the change.
type answerCheck func(*dns.Msg) bool

// hasExactly matches an A answer holding exactly the given addresses.
func hasExactly(want ...string) answerCheck {
	return func(m *dns.Msg) bool {
		if m.Rcode != dns.RcodeSuccess {
			return false
		}
		var got []string
		for _, rr := range m.Answer {
			if a, ok := rr.(*dns.A); ok {
				got = append(got, a.A.String())
			}
		}
		slices.Sort(got)
		return slices.Equal(got, want)
	}
}

// pollUntil queries name/A on addr every interval until check passes or
// deadline; it returns when the passing reply arrived.
func pollUntil(ctx context.Context, addr, name string, check answerCheck, interval time.Duration, deadline time.Time) (time.Time, bool) {
	c := &dns.Client{Net: "udp", Timeout: pollTimeout}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if r, _, err := c.ExchangeContext(ctx, m, addr); err == nil && check(r) {
			return time.Now(), true
		}
		time.Sleep(interval)
	}
	return time.Time{}, false
}

// runWait is the "wait" command: poll a server until name has the given
// address (or any A answer), bounded by -timeout.
func runWait(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	server := fs.String("server", "", "server address, 127.0.0.1:port")
	name := fs.String("name", "", "name to ask for (type A)")
	want := fs.String("want", "", "address the answer must hold exactly; empty: any answer")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loopbackOnly(*server); err != nil {
		return err
	}
	check := func(m *dns.Msg) bool { return m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0 }
	if *want != "" {
		check = hasExactly(*want)
	}
	start := time.Now()
	if _, ok := pollUntil(ctx, *server, dns.Fqdn(*name), check, 200*time.Millisecond, start.Add(*timeout)); !ok {
		return fmt.Errorf("%s did not answer %s within %s", *server, *name, *timeout)
	}
	fmt.Fprintf(os.Stderr, "wait: %s answers %s after %s\n", *server, *name, time.Since(start).Round(time.Millisecond))
	return nil
}

// runProgLat is the "proglat" command.
func runProgLat(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("proglat", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "admin kubeconfig of the test control plane")
	zone := fs.String("zone", "cluster.local", "cluster domain")
	rate := fs.Int("rate", 50, "API changes per second")
	changes := fs.Int("changes", 500, "changes to make")
	pool := fs.Int("pool", 100, "headless Services whose endpoint moves")
	timeout := fs.Duration("timeout", 3*time.Second, "a change not answered after this long is missed")
	interval := fs.Duration("interval", 2*time.Millisecond, "poll interval per server and change")
	results := fs.String("results", "", "results file to append to")
	var targets []dnsTarget
	serverFlag(fs, &targets)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(targets) == 0 || *results == "" || *rate < 1 || *pool < 1 || *changes < 1 {
		return errors.New("need -server, -results, and positive -rate, -pool, -changes")
	}
	// The pool must turn over slower than the timeout, or a poll could see
	// the next change to the same Service instead of its own.
	if float64(*pool)*2/float64(*rate) <= timeout.Seconds() {
		return fmt.Errorf("-pool %d at -rate %d reuses a Service within -timeout %s", *pool, *rate, *timeout)
	}
	cs, err := clientFor(*kubeconfig, float32(*rate*4), *rate*8)
	if err != nil {
		return err
	}
	z := strings.TrimSuffix(*zone, ".")
	if err := proglatSetup(ctx, cs, targets, z, *pool); err != nil {
		return err
	}

	lat := make(map[string][]float64) // server -> latencies in seconds
	missed := make(map[string]int)
	var mu sync.Mutex // guards lat, missed
	var wg sync.WaitGroup
	defer wg.Wait() // on an early return too: every poll ends by its deadline
	sem := make(chan struct{}, proglatInFlight)
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	defer tick.Stop()
	var apiErr error
	var errOnce sync.Once
	for i := range *changes {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			name, check, err := proglatChange(ctx, cs, z, i, *pool)
			if err != nil {
				errOnce.Do(func() { apiErr = err })
				return
			}
			t0 := time.Now()
			var pw sync.WaitGroup
			for _, t := range targets {
				pw.Go(func() {
					at, ok := pollUntil(ctx, t.addr, name, check, *interval, t0.Add(*timeout))
					mu.Lock()
					defer mu.Unlock()
					if ok {
						lat[t.name] = append(lat[t.name], at.Sub(t0).Seconds())
					} else {
						missed[t.name]++
					}
				})
			}
			pw.Wait()
		})
	}
	wg.Wait()
	if apiErr != nil {
		return apiErr
	}
	for _, t := range targets {
		l := lat[t.name]
		// A missed change counts as the timeout: it is at least that late.
		for range missed[t.name] {
			l = append(l, timeout.Seconds())
		}
		slices.Sort(l)
		r := record{Kind: "proglat", Impl: t.name, Changes: *changes, Missed: missed[t.name],
			P50ms: 1000 * percentile(l, 0.5), P99ms: 1000 * percentile(l, 0.99), MaxMs: 1000 * percentile(l, 1)}
		fmt.Fprintf(os.Stderr, "proglat: %-9s %d changes at %d/s: p50 %.1f ms  p99 %.1f ms  max %.1f ms  missed %d\n",
			t.name, *changes, *rate, r.P50ms, r.P99ms, r.MaxMs, r.Missed)
		if err := appendRecord(*results, r); err != nil {
			return err
		}
	}
	return nil
}

// proglatSetup creates the namespace and the pool, and waits until every
// server answers the pool's last Service.
func proglatSetup(ctx context.Context, cs kubernetes.Interface, targets []dnsTarget, zone string, pool int) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: proglatNamespace}}
	if err := create(ctx, func(ctx context.Context) error {
		_, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
		return err
	}); err != nil {
		return fmt.Errorf("create namespace %s: %w", proglatNamespace, err)
	}
	for k := range pool {
		if err := createHeadless(ctx, cs, proglatNamespace, fmt.Sprintf("p%d", k), addIP(poolBase, k)); err != nil {
			return err
		}
	}
	last := fmt.Sprintf("p%d.%s.svc.%s.", pool-1, proglatNamespace, zone)
	for _, t := range targets {
		if _, ok := pollUntil(ctx, t.addr, last, hasExactly(addIP(poolBase, pool-1).String()), 50*time.Millisecond, time.Now().Add(2*time.Minute)); !ok {
			return fmt.Errorf("%s (%s) does not answer %s", t.name, t.addr, last)
		}
	}
	return nil
}

// proglatChange makes change i and returns the name to poll and the check
// its answer must pass.
func proglatChange(ctx context.Context, cs kubernetes.Interface, zone string, i, pool int) (string, answerCheck, error) {
	ctx, cancel := context.WithTimeout(ctx, loadRequestTimeout)
	defer cancel()
	if i%2 == 0 {
		name := fmt.Sprintf("c%d", i)
		got, err := cs.CoreV1().Services(proglatNamespace).Create(ctx, newService(proglatNamespace, name, false), metav1.CreateOptions{})
		if err != nil {
			return "", nil, fmt.Errorf("create service %s: %w", name, err)
		}
		return name + "." + proglatNamespace + ".svc." + zone + ".", hasExactly(got.Spec.ClusterIP), nil
	}
	svc := fmt.Sprintf("p%d", (i/2)%pool)
	ip := addIP(changeBase, i).String()
	patch := fmt.Sprintf(`{"endpoints":[{"addresses":[%q],"conditions":{"ready":true}}]}`, ip)
	if _, err := cs.DiscoveryV1().EndpointSlices(proglatNamespace).Patch(ctx, svc, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return "", nil, fmt.Errorf("patch endpointslice %s: %w", svc, err)
	}
	return svc + "." + proglatNamespace + ".svc." + zone + ".", hasExactly(ip), nil
}
