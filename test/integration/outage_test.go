package integration

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
	"github.com/clusterdns/clusterdns/test/cluster"
)

// Outcomes the querier counts.
const (
	outOK         = iota // the whole expected reply
	outServfail          // SERVFAIL
	outWrong             // any other difference
	outUnanswered        // no reply, twice in a row
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "servfail", "wrong", "unanswered"}

// querier keeps asking fixed questions whose answers must not change, about
// 20 per second, alternating UDP and TCP, and counts outcomes per phase.
type querier struct {
	phases []string
	phase  atomic.Int32
	counts [][numOutcomes]atomic.Int64
	mu     sync.Mutex
	wrong  []string // first few wrong replies, for the report
	stop   chan struct{}
	done   chan struct{}
}

// maxQuerierRun bounds the querier if the test never stops it.
const maxQuerierRun = 3 * time.Minute

func startQuerier(t *testing.T, addr string, cases []resolvertest.Case, phases ...string) *querier {
	q := &querier{phases: phases, counts: make([][numOutcomes]atomic.Int64, len(phases)),
		stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(q.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		limit := time.After(maxQuerierRun)
		for i := 0; ; i++ {
			select {
			case <-q.stop:
				return
			case <-limit:
				return
			case <-tick.C:
			}
			c := cases[i%len(cases)]
			network := [2]string{"udp", "tcp"}[i/len(cases)%2]
			q.record(q.ask(t, network, addr, c))
		}
	}()
	t.Cleanup(q.halt)
	return q
}

// ask sends one question (once more if it got no reply) and classifies the
// reply.
func (q *querier) ask(t *testing.T, network, addr string, c resolvertest.Case) int {
	got, err := exchange(network, addr, c.Msg())
	if err != nil {
		got, err = exchange(network, addr, c.Msg())
	}
	switch {
	case err != nil:
		q.note(fmt.Sprintf("%s %s: %v", network, label(c), err))
		return outUnanswered
	case matches(t, c, got):
		return outOK
	case got.Rcode == dns.RcodeServerFailure:
		q.note(fmt.Sprintf("%s %s: SERVFAIL", network, label(c)))
		return outServfail
	}
	q.note(fmt.Sprintf("%s %s: %s\n%s%s", network, label(c), dns.RcodeToString[got.Rcode], resolvertest.RRs(got.Answer), resolvertest.RRs(got.Ns)))
	return outWrong
}

func (q *querier) record(outcome int) { q.counts[q.phase.Load()][outcome].Add(1) }

func (q *querier) note(s string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.wrong) < 5 {
		q.wrong = append(q.wrong, s)
	}
}

// enter starts counting into the named phase.
func (q *querier) enter(phase string) {
	for i, p := range q.phases {
		if p == phase {
			q.phase.Store(int32(i))
			return
		}
	}
	panic("unknown phase " + phase)
}

// halt stops the querier and waits for it; harmless twice.
func (q *querier) halt() {
	select {
	case <-q.stop:
	default:
		close(q.stop)
	}
	<-q.done
}

// report logs the counts per phase and fails t on any reply that was not
// the expected one.
func (q *querier) report(t *testing.T) {
	t.Helper()
	q.halt()
	var bad int64
	for i, p := range q.phases {
		var parts []string
		for o := range numOutcomes {
			n := q.counts[i][o].Load()
			parts = append(parts, fmt.Sprintf("%s=%d", outcomeNames[o], n))
			if o != outOK {
				bad += n
			}
		}
		t.Logf("FIGURE queries during %-8s %s", p, strings.Join(parts, " "))
	}
	if bad > 0 {
		t.Errorf("%d queries did not get the last known answer; first ones:\n%s", bad, strings.Join(q.wrong, "\n"))
	}
}

// TestAPIServerOutage stops the API server while queries keep flowing: every
// answer must keep coming from the last known state, then catch up with
// changes made after the restart. Not parallel: the API server is shared.
func TestAPIServerOutage(t *testing.T) {
	c := cluster.Start(t)
	up := startStub(t)
	ns := c.NewNamespace(t, "outage")
	http := cluster.Port{Name: "http", Port: 80}
	keep := c.CreateService(t, cluster.ClusterIPService(ns, "keep", http))
	gone := c.CreateService(t, cluster.ClusterIPService(ns, "gone", http))
	for _, h := range []string{"head", "grow"} {
		c.CreateService(t, cluster.HeadlessService(ns, h, http))
	}
	c.CreateEndpointSlice(t, cluster.EndpointSlice(ns, "head", "head-1", discoveryv1.AddressTypeIPv4, []cluster.Port{http},
		cluster.Endpoint{Addresses: []string{"10.246.0.1"}}, cluster.Endpoint{Addresses: []string{"10.246.0.2"}}))
	c.CreateEndpointSlice(t, cluster.EndpointSlice(ns, "grow", "grow-1", discoveryv1.AddressTypeIPv4, []cluster.Port{http},
		cluster.Endpoint{Addresses: []string{"10.246.1.1"}}))
	srv := startServer(t, configYAML(up.Addr, c.Kubeconfig))

	keepN, goneN, headN, growN := svcName("keep", ns), svcName("gone", ns), svcName("head", ns), svcName("grow", ns)
	// gone and grow change after the restart: not in the querier's set.
	goneCase := answerCase(goneN, dns.TypeA, goneN+" 5 IN A "+gone.Spec.ClusterIP)
	growCase := answerCase(growN, dns.TypeA, growN+" 5 IN A 10.246.1.1")
	steady := []resolvertest.Case{
		answerCase(keepN, dns.TypeA, keepN+" 5 IN A "+keep.Spec.ClusterIP),
		answerCase(headN, dns.TypeA, headN+" 5 IN A 10.246.0.1", headN+" 5 IN A 10.246.0.2"),
		nxCase("nosuch."+ns+".svc.cluster.local.", dns.TypeA),
		authoritative(resolvertest.Case{Qname: ns + ".svc.cluster.local.", Qtype: dns.TypeA, Ns: []string{clusterSOA}})[0],
	}
	for _, cs := range append(steady, goneCase, growCase) {
		waitFor(t, srv.addr, cs, time.Now(), 10*time.Second)
	}

	q := startQuerier(t, srv.addr, steady, "before", "outage", "restart", "after")
	time.Sleep(time.Second)

	q.enter("outage")
	t.Cleanup(func() { c.StartAPIServer(t) }) // whatever happens below, the next tests get their API server
	began := time.Now()
	c.StopAPIServer(t)
	t.Logf("FIGURE API server stopped in %v", time.Since(began).Round(time.Millisecond))
	down := time.Now()
	check(t, srv.addr, []resolvertest.Case{goneCase, growCase})
	code, body := httpGet(t, srv.ready)
	t.Logf("/ready during the outage: %d %q", code, strings.TrimSpace(body))
	time.Sleep(3*time.Second - time.Since(down))
	check(t, srv.addr, append(steady, goneCase, growCase))

	q.enter("restart")
	began = time.Now()
	c.StartAPIServer(t)
	t.Logf("FIGURE API server down for %v, restart took %v", time.Since(down).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))

	// Changes right after the restart, while the index's watches reconnect.
	q.enter("after")
	changed := time.Now()
	if err := c.Client.CoreV1().Services(ns).Delete(t.Context(), "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	after := c.CreateService(t, cluster.ClusterIPService(ns, "after", http))
	c.CreateEndpointSlice(t, cluster.EndpointSlice(ns, "grow", "grow-2", discoveryv1.AddressTypeIPv4, []cluster.Port{http},
		cluster.Endpoint{Addresses: []string{"10.246.1.2"}}))
	afterN := svcName("after", ns)
	const catchUp = 60 * time.Second // reflector backoff after an outage can reach tens of seconds
	for _, w := range []struct {
		what string
		c    resolvertest.Case
	}{
		{"deleted after restart", nxCase(goneN, dns.TypeA)},
		{"created after restart", answerCase(afterN, dns.TypeA, afterN+" 5 IN A "+after.Spec.ClusterIP)},
		{"slice added after restart", answerCase(growN, dns.TypeA, growN+" 5 IN A 10.246.1.1", growN+" 5 IN A 10.246.1.2")},
	} {
		d := waitFor(t, srv.addr, w.c, changed, catchUp)
		t.Logf("FIGURE catch-up %-28s %v after the change", w.what, d.Round(time.Millisecond))
	}
	time.Sleep(time.Second) // a last second of queries on the caught-up index
	q.report(t)
}
