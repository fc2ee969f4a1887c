package reliability

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/test/cluster"
)

// negativeP99 is a generous bound on the p99 of negative answers: below any
// retry or upstream timeout, and it holds on a loaded 2-core machine.
const negativeP99 = 500 * time.Millisecond

// nxCheck accepts NXDOMAIN without answers.
func nxCheck(_ Question, r *dns.Msg) error {
	if r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
		return fmt.Errorf("want NXDOMAIN, got %s with %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	return nil
}

// negativeLoad asks rate unique names a second made by name(i, random).
func negativeLoad(c *Child, name func(i int, r uint64) string) Load {
	const rate = 1000
	d := pick(5*time.Second, 30*time.Second)
	return Load{Addr: c.DNS, Workers: 4, Window: 64, Rate: rate, Count: int(rate * d.Seconds()), Duration: d,
		Timeout: 2 * time.Second, Check: nxCheck,
		Query: func(i int) Question { return Question{Name: name(i, rand.Uint64()), Type: dns.TypeA} }}
}

// checkNegative asserts on a negative load and returns its row.
func checkNegative(t *testing.T, what string, res *Result, peaks Peaks, cacheSize int) Row {
	t.Helper()
	entries := peaks.Gauges["clusterdns_cache_entries"]
	t.Logf("%s: %s; cache entries peak %.0f of %d", what, res, entries, cacheSize)
	if res.Wrong > 0 || res.ServFail > 0 || res.AnsweredRatio() < 0.99 {
		t.Errorf("%s: %s %v", what, res, res.WrongSamples)
	}
	if p99 := res.P99(); p99 > negativeP99 {
		t.Errorf("%s: p99 %v, want below %v", what, p99, negativeP99)
	}
	if peaks.Scrapes == 0 {
		t.Errorf("%s: no metrics scrape succeeded", what)
	}
	if entries > float64(cacheSize) {
		t.Errorf("%s: clusterdns_cache_entries peaked at %.0f, over cache.size %d", what, entries, cacheSize)
	}
	row := LoadRow(scenario(what), res).WithPeaks(peaks)
	row.Note = fmt.Sprintf("all names unique; cache entries peak %.0f (cache.size %d)", entries, cacheSize)
	return row
}

// TestNegativeOutsideZone asks unique names the upstream answers NXDOMAIN
// for: every one is forwarded and negatively cached, many times more than
// the cache holds.
func TestNegativeOutsideZone(t *testing.T) {
	scenarioTest(t)
	cacheSize := pick(1000, 10000)
	up := startStub(t, StubAnswer, 0)
	c := startChild(t, config{upstreams: []string{up.Addr.String()}, cacheSize: cacheSize})
	s := sample(t, c, 100*time.Millisecond, "clusterdns_cache_entries")
	res, err := negativeLoad(c, func(i int, r uint64) string { return fmt.Sprintf("n%d-%x.%s", i, r, NXZone) }).Run(t.Context())
	peaks := s.Stop()
	if err != nil {
		t.Fatal(err)
	}
	report(t, checkNegative(t, "random names outside the cluster zone (forwarded NXDOMAIN)", &res, peaks, cacheSize))
}

// TestNegativeClusterZone asks unique names under the cluster zone: the
// index answers NXDOMAIN from memory and the cache, which skips the cluster
// zone, must not grow.
func TestNegativeClusterZone(t *testing.T) {
	scenarioTest(t)
	c := cluster.Start(t)
	const cacheSize = 1000
	up := startStub(t, StubAnswer, 0)
	child := startChild(t, config{upstreams: []string{up.Addr.String()}, kubeconfig: c.Kubeconfig, cacheSize: cacheSize})
	waitReady(t, child, 60*time.Second)
	s := sample(t, child, 100*time.Millisecond, "clusterdns_cache_entries")
	shapes := []string{"%x-%d.default.svc.cluster.local.", "%x-%d.svc.cluster.local.", "%x-%d.cluster.local.", "%x.%d.nope.pod.cluster.local."}
	res, err := negativeLoad(child, func(i int, r uint64) string { return fmt.Sprintf(shapes[i%len(shapes)], r, i) }).Run(t.Context())
	peaks := s.Stop()
	if err != nil {
		t.Fatal(err)
	}
	report(t, checkNegative(t, "random names in the cluster zone (NXDOMAIN from the index)", &res, peaks, cacheSize))
}
