package reliability

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/test/cluster"
)

// startProxy puts an APIProxy in front of the cluster's API server for the
// length of t and returns it with a kubeconfig pointing at it.
func startProxy(t *testing.T, c *cluster.Cluster) (*APIProxy, string) {
	t.Helper()
	p, err := StartAPIProxy(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("proxy close: %v", err)
		}
	})
	kc, err := p.Kubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p, kc
}

// TestAPIServerFaults puts a proxy between clusterdns and the API server
// that, for a while, holds every request or answers every one with 500,
// after closing the watches in progress so clusterdns must come back
// through the fault. clusterdns must keep answering from its index; a
// change made meanwhile must show once the fault ends.
func TestAPIServerFaults(t *testing.T) {
	scenarioTest(t)
	c := cluster.Start(t)
	faultFor := pick(5*time.Second, 30*time.Second)
	var rows []Row
	for _, tc := range []struct {
		name, label string
		fault       Fault
	}{
		{"slow", "API server slow (every request held 2 s)", Fault{Delay: 2 * time.Second}},
		{"500", "API server answers 500 to everything", Fault{Status: http.StatusInternalServerError}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := c.NewNamespace(t, "fault")
			exp := gapObjects(t, c, ns)
			p, kc := startProxy(t, c)
			child := startIndexed(t, kc, exp, 60*time.Second)

			s := sample(t, child, 200*time.Millisecond)
			stopLoad := background(t, steadyLoad(child, exp))
			stopReady := readyWatch(t, child)
			time.Sleep(time.Second)

			p.SetFault(tc.fault)
			closed := p.CloseWatches()
			time.Sleep(faultFor / 2)
			during := []*change{createChange(c, ns, "during-0"), deleteChange(c, ns, "pre-19")} // straight to the API server
			applyAll(t, during)
			time.Sleep(faultFor / 2)
			p.SetFault(Fault{})
			cleared := time.Now()
			duringVisible := visible(t, child.DNS, during, cleared)
			post := []*change{createChange(c, ns, "post-0")}
			applyAll(t, post)
			postVisible := visible(t, child.DNS, post, time.Time{})
			time.Sleep(time.Second)

			res := stopLoad()
			ready := stopReady()
			peaks := s.Stop()
			st := p.Stats()
			checkServed(t, &res, ready)
			if st.Faulted == 0 {
				t.Errorf("no request of clusterdns met the fault (%d watches closed): the scenario tested nothing", closed)
			}
			t.Logf("proxy: %d watches closed, %d requests faulted, lists %v, watches %v", closed, st.Faulted, st.Lists, st.Watches)
			row := LoadRow(scenario(fmt.Sprintf("%s for %v", tc.label, faultFor)), &res).WithPeaks(peaks)
			row.Note = fmt.Sprintf("%d requests faulted; change made during the fault visible %s after it ended, later change %s; %v",
				st.Faulted, fmtDuration(duringVisible), fmtDuration(postVisible), ready)
			rows = append(rows, row)
		})
	}
	report(t, rows...)
}

// TestAPIServerRelist loads a few thousand services, then makes every
// informer of clusterdns relist (the proxy closes the watches and answers
// the next one with 410 Gone, as an API server does once its watch cache
// has moved past a client) and compares the memory during the relist with
// the steady state before it.
func TestAPIServerRelist(t *testing.T) {
	scenarioTest(t)
	c := cluster.Start(t)
	services := pick(2000, 5000)
	const perSvc = 20 // endpoints per headless service: half the services, so services*10 endpoints
	ns := c.NewNamespace(t, "relist")
	began := time.Now()
	exp := bulk(t, c, ns, services, perSvc, 16)
	t.Logf("created %d services, %d endpoints in %v", services, services/2*perSvc, time.Since(began).Round(time.Millisecond))
	p, kc := startProxy(t, c)
	child := startIndexed(t, kc, &expectations{}, 120*time.Second)
	// Synced is not enough: wait until the last objects are answered.
	names := exp.names()
	slices.Sort(names)
	for _, n := range []string{names[0], names[len(names)-1]} {
		want, _ := exp.get(n)
		if _, err := waitAnswer(child.DNS, n, dns.TypeA, func(r *dns.Msg) error { return sameA(r, want) }, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	stopLoad := background(t, steadyLoad(child, exp))
	steadyFor := pick(3*time.Second, 10*time.Second)
	time.Sleep(time.Second) // the load's own buffers and workers settle first
	steady := sample(t, child, 100*time.Millisecond)
	time.Sleep(steadyFor)
	st := steady.Stop()

	before := p.Stats()
	s := sample(t, child, 50*time.Millisecond)
	start := time.Now()
	closed := p.ExpireWatches()
	// The relist is over once services and endpointslices were listed
	// again and each has a plain watch after the list.
	relisted := func() bool {
		now := p.Stats()
		for _, r := range []string{"/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices"} {
			if now.Lists[r] <= before.Lists[r] || now.Watches[r] <= before.Watches[r] {
				return false
			}
		}
		return true
	}
	for !relisted() {
		if time.Since(start) > 60*time.Second {
			t.Fatalf("no relist within 60 s of expiring the watches: before %+v, now %+v", before, p.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	time.Sleep(2 * time.Second) // what the relist left behind is still in the heap
	rl := s.Stop()
	res := stopLoad()
	after := p.Stats()

	ratio := float64(rl.PeakRSS) / float64(st.MeanRSS)
	t.Logf("steady: mean RSS %s (peak %s), %d goroutines; relist (%d watches closed, %d answered 410, took %v): peak RSS %s = %.2fx steady, %d goroutines",
		mib(st.MeanRSS), mib(st.PeakRSS), st.Goroutines(), closed, after.Expired-before.Expired, took.Round(time.Millisecond), mib(rl.PeakRSS), ratio, rl.Goroutines())
	t.Logf("lists %v -> %v", before.Lists, after.Lists)
	checkServed(t, &res, readiness{})
	if ratio > 1.5 {
		t.Errorf("peak RSS during the relist %s is %.2fx the steady %s, want at most 1.5x", mib(rl.PeakRSS), ratio, mib(st.MeanRSS))
	}
	row := LoadRow(scenario(fmt.Sprintf("relist of %d services / %d endpoints", services, services/2*perSvc)), &res).WithPeaks(rl)
	var kinds []string
	for r, n := range after.Lists {
		if d := n - before.Lists[r]; d > 0 {
			kinds = append(kinds, fmt.Sprintf("%s x%d", r[strings.LastIndexByte(r, '/')+1:], d))
		}
	}
	slices.Sort(kinds)
	row.Note = fmt.Sprintf("steady RSS %s, relist peak %s (%.2fx, bound 1.5x); relisted %s in %s",
		mib(st.MeanRSS), mib(rl.PeakRSS), ratio, strings.Join(kinds, ", "), fmtDuration(took))
	report(t, row)
}
