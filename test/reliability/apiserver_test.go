package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/test/cluster"
)

// gapObjects creates the services a gap scenario starts with: ClusterIP
// pre-0..19 and headless hpre-0..9 with three endpoints each. The load asks
// only the ones no change touches (pre-0..15, hpre-0..7); the rest are
// what the changes delete or move.
func gapObjects(t *testing.T, c *cluster.Cluster, ns string) (load *expectations) {
	t.Helper()
	load = &expectations{}
	err := parallel(t.Context(), 30, 8, func(ctx context.Context, i int) error {
		if i < 20 {
			name := fmt.Sprintf("pre-%d", i)
			ip, err := createClusterIP(ctx, c, ns, name)
			if i < 16 {
				load.set(svcFQDN(ns, name), []netip.Addr{ip})
			}
			return err
		}
		k := i - 20
		name := fmt.Sprintf("hpre-%d", k)
		ips := []netip.Addr{endpointIP(k, 0), endpointIP(k, 1), endpointIP(k, 2)}
		if k < 8 {
			load.set(svcFQDN(ns, name), ips)
		}
		return createHeadless(ctx, c, ns, name, ips)
	})
	if err != nil {
		t.Fatal(err)
	}
	return load
}

// steadyLoad is the background load of the API scenarios: 200 queries a
// second for names of exp, each answer checked against exp.
func steadyLoad(c *Child, exp *expectations) Load {
	names := exp.names()
	return Load{Addr: c.DNS, Workers: 2, Window: 32, Rate: 200, Count: 1 << 24, Duration: time.Hour, Timeout: 2 * time.Second,
		Query: func(int) Question { return Question{Name: names[rand.IntN(len(names))], Type: dns.TypeA} },
		Check: expectA(exp.get)}
}

// startIndexed starts clusterdns on kubeconfig and waits until it answers
// every name of exp.
func startIndexed(t *testing.T, kubeconfig string, exp *expectations, bound time.Duration) *Child {
	t.Helper()
	up := startStub(t, StubAnswer, 0)
	c := startChild(t, config{upstreams: []string{up.Addr.String()}, kubeconfig: kubeconfig})
	waitReady(t, c, bound)
	deadline := time.Now().Add(bound)
	for _, n := range exp.names() {
		want, _ := exp.get(n)
		if _, err := waitAnswer(c.DNS, n, dns.TypeA, func(r *dns.Msg) error { return sameA(r, want) }, time.Until(deadline)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// checkServed asserts on the load that ran across an API fault: the names
// that existed before must have kept their answers throughout.
func checkServed(t *testing.T, res *Result, ready readiness) {
	t.Helper()
	t.Logf("load: %s", res)
	if res.Wrong > 0 {
		t.Errorf("%d wrong answers for names that existed before the fault, e.g. %v", res.Wrong, res.WrongSamples)
	}
	if res.ServFail > 0 {
		t.Errorf("%d SERVFAIL for names the index knew before the fault", res.ServFail)
	}
	if res.AnsweredRatio() < 0.99 {
		t.Errorf("answered %d of %d", res.Answered, res.Sent)
	}
	if ready.notReady > 0 {
		t.Errorf("%v: an API outage must not take the server out of rotation", ready)
	}
}

// TestAPIServerStop stops kube-apiserver under load, restarts it, applies
// the changes queued while it was down right after, and more a second
// later. Not parallel: the API server is the whole binary's.
func TestAPIServerStop(t *testing.T) {
	scenarioTest(t)
	c := cluster.Start(t)
	gap := pick(5*time.Second, 30*time.Second)
	ns := c.NewNamespace(t, "gap")
	exp := gapObjects(t, c, ns)
	child := startIndexed(t, c.Kubeconfig, exp, 60*time.Second)

	s := sample(t, child, 200*time.Millisecond)
	start := time.Now()
	stopLoad := background(t, steadyLoad(child, exp))
	stopReady := readyWatch(t, child)
	time.Sleep(time.Second)

	stopping := time.Now()
	c.StopAPIServer(t)
	down := time.Now()
	time.Sleep(gap)
	c.StartAPIServer(t)
	up := time.Now()
	queued := []*change{
		createChange(c, ns, "during-0"),
		createChange(c, ns, "during-1"),
		deleteChange(c, ns, "pre-19"),
		endpointsChange(c, ns, "hpre-9", []netip.Addr{endpointIP(9, 7), endpointIP(9, 8)}),
	}
	applyAll(t, queued)
	queuedVisible := visible(t, child.DNS, queued, up)
	time.Sleep(time.Second)
	post := []*change{
		createChange(c, ns, "post-0"),
		deleteChange(c, ns, "pre-18"),
		endpointsChange(c, ns, "hpre-8", []netip.Addr{endpointIP(8, 9)}),
	}
	applyAll(t, post)
	postVisible := visible(t, child.DNS, post, time.Time{})
	time.Sleep(time.Second)

	res := stopLoad()
	ready := stopReady()
	peaks := s.Stop()
	checkServed(t, &res, ready)
	t.Logf("timeline from the load's start: stop began %v, API server gone %v, ready again %v; seconds with slow or lost queries %s",
		stopping.Sub(start).Round(100*time.Millisecond), down.Sub(start).Round(100*time.Millisecond),
		up.Sub(start).Round(100*time.Millisecond), res.TroubleString())
	row := LoadRow(scenario(fmt.Sprintf("API server stopped %v", gap)), &res).WithPeaks(peaks)
	row.Note = fmt.Sprintf("stopped to ready again %s (its shutdown took %s more); changes queued during the gap visible %s after restart, later changes %s; %v",
		fmtDuration(up.Sub(down)), fmtDuration(down.Sub(stopping)), fmtDuration(queuedVisible), fmtDuration(postVisible), ready)
	report(t, row)
}
