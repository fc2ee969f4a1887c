package reliability

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// upstreamTimeout is forward.timeout in these scenarios: short enough that
// a fault is detected quickly, long against loopback round trips.
const upstreamTimeout = time.Second

// upstreamQuestion is query i of a load tagged tag: a unique name (every
// query misses the cache and reaches an upstream), every 10th under NXZone.
func upstreamQuestion(tag string) func(i int) Question {
	return func(i int) Question {
		if i%10 == 9 {
			return Question{Name: fmt.Sprintf("q%d-%s.%s", i, tag, NXZone), Type: dns.TypeA}
		}
		return Question{Name: fmt.Sprintf("q%d-%s.example.test.", i, tag), Type: dns.TypeA}
	}
}

// stubAnswers is the Check of loads through stubs: StubIP, or NXDOMAIN
// under NXZone; never PoisonIP.
var stubAnswers = expectA(func(name string) ([]netip.Addr, bool) {
	if dns.IsSubDomain(NXZone, name) {
		return nil, false
	}
	return []netip.Addr{StubIP(name)}, true
})

// TestUpstreamFaults runs a load of unique names through two upstreams, one
// good and one faulty, with a fresh clusterdns per fault. Each fault gets a
// few sequential warm-up queries first (the time the fault takes to be
// detected is reported apart), then the measured load.
func TestUpstreamFaults(t *testing.T) {
	scenarioTest(t)
	const rate = 400
	dur := pick(3*time.Second, 30*time.Second)
	cases := []struct {
		name       string
		mode       StubMode
		d          time.Duration
		markedDown bool // the fault must take the upstream out of rotation
		spoofs     bool // the stub sends mismatched replies
	}{
		{name: "both healthy (baseline)", mode: StubAnswer},
		{name: "one of two dead", mode: StubDead, markedDown: true},
		{name: "one slow (2 s, over forward.timeout 1 s)", mode: StubSlow, d: 2 * time.Second, markedDown: true},
		{name: "one answers SERVFAIL", mode: StubServFail},
		{name: "one answers garbage", mode: StubGarbage, markedDown: true, spoofs: true},
		{name: "one sends a wrong-ID reply first", mode: StubWrongID, spoofs: true},
		{name: "one sends a wrong-question reply first", mode: StubWrongQuestion, spoofs: true},
		{name: "one flapping (1 s up, 1 s dead)", mode: StubFlap, d: time.Second},
	}
	var rows []Row
	for _, tc := range cases {
		t.Run(tc.mode.String(), func(t *testing.T) {
			good := startStub(t, StubAnswer, 0)
			bad := startStub(t, tc.mode, tc.d)
			c := startChild(t, config{upstreams: []string{good.Addr.String(), bad.Addr.String()}, fwdTimeout: upstreamTimeout})
			warm, err := Load{Addr: c.DNS, Workers: 1, Window: 1, Count: 10, Duration: 30 * time.Second,
				Timeout: 5 * time.Second, Query: upstreamQuestion("warm"), Check: stubAnswers}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			badBefore := bad.LoadQueries()
			s := sample(t, c, 100*time.Millisecond)
			res, err := Load{Addr: c.DNS, Workers: 4, Window: 64, Rate: rate, Count: int(rate * dur.Seconds()),
				Duration: dur, Timeout: 5 * time.Second, Query: upstreamQuestion("load"), Check: stubAnswers}.Run(t.Context())
			peaks := s.Stop()
			if err != nil {
				t.Fatal(err)
			}
			badLoad := bad.LoadQueries() - badBefore
			t.Logf("warm-up: %s", &warm)
			t.Logf("load: %s", &res)
			t.Logf("faulty upstream got %d of the load's %d queries (%d probes in all), sent %d mismatched replies",
				badLoad, res.Sent, bad.Probes.Load(), bad.Spoofs.Load())

			// Asked again (the latest names come from the cache, which
			// holds the last cache.size of them), every answer is the real
			// one: no spoof was ever cached.
			for k := range 50 {
				q := upstreamQuestion("load")(res.Sent - 1 - k*7)
				r, err := exchangeTimeout(c.DNS, q.Name, q.Type, 3*time.Second)
				if err != nil {
					t.Errorf("re-query %s: %v", q.Name, err)
					continue
				}
				if err := stubAnswers(q, r); err != nil {
					t.Errorf("re-query %s (from the cache): %v", q.Name, err)
				}
			}
			m := scrape(t, c)
			label := fmt.Sprintf("upstream=%q", bad.Addr.String())
			mismatched := int64(m.Value("clusterdns_forward_mismatched_replies_total", label))

			if res.Wrong > 0 || warm.Wrong > 0 {
				t.Errorf("%d wrong answers (warm-up %d), e.g. %v %v", res.Wrong, warm.Wrong, res.WrongSamples, warm.WrongSamples)
			}
			if res.AnsweredRatio() < 0.99 {
				t.Errorf("answered %d of %d", res.Answered, res.Sent)
			}
			if res.ServFail > res.Sent/1000 {
				t.Errorf("%d SERVFAIL of %d with a good upstream available", res.ServFail, res.Sent)
			}
			if tc.markedDown {
				// Once marked down, the faulty upstream only gets probes and
				// adds nothing to a query's latency.
				if badLoad > int64(res.Sent)/100 {
					t.Errorf("faulty upstream got %d of %d load queries after the warm-up: not taken out of rotation", badLoad, res.Sent)
				}
				if p99 := res.P99(); p99 >= upstreamTimeout/2 {
					t.Errorf("p99 %v after the warm-up, want < %v (half forward.timeout)", p99, upstreamTimeout/2)
				}
			}
			if tc.spoofs {
				// Each mismatched packet is dropped and counted; a spoof that
				// reached a socket after its query gave up may go uncounted.
				sp := bad.Spoofs.Load()
				if mismatched > sp || mismatched < sp*95/100 {
					t.Errorf("clusterdns_forward_mismatched_replies_total{%s} = %d, stub sent %d mismatched replies", label, mismatched, sp)
				}
			}
			note := fmt.Sprintf("warm-up %d q p99 %s; faulty upstream got %d load q", warm.Sent, fmtDuration(warm.P99()), badLoad)
			if tc.spoofs {
				note += fmt.Sprintf("; %d mismatched sent, %d counted", bad.Spoofs.Load(), mismatched)
			}
			rows = append(rows, LoadRow(scenario("upstreams: "+tc.name), &res).WithPeaks(peaks))
			rows[len(rows)-1].Note = note
		})
	}
	report(t, rows...)
}

// TestGoroutinesPerForwardedQuery holds n forwarded queries in flight (the
// upstream answers after 500 ms) and counts the server's goroutines. The
// front end's design allows one per admitted query; a stage deriving a
// context from the query's must not add another per query.
func TestGoroutinesPerForwardedQuery(t *testing.T) {
	scenarioTest(t)
	const n = 40
	up := startStub(t, StubSlow, 500*time.Millisecond)
	c := startChild(t, config{upstreams: []string{up.Addr.String()}, fwdTimeout: 2 * time.Second})
	base := scrape(t, c).Value("go_goroutines")
	stop := background(t, Load{Addr: c.DNS, Workers: 1, Window: n, Count: n, Duration: 5 * time.Second,
		Timeout: 3 * time.Second, Query: upstreamQuestion("inflight"), Check: stubAnswers})
	time.Sleep(250 * time.Millisecond)
	during := scrape(t, c).Value("go_goroutines")
	res := stop()
	if res.Answered != n || res.Wrong > 0 {
		t.Fatalf("load: %s", &res)
	}
	if extra := during - base; extra > n+8 {
		t.Errorf("%d queries in flight added %.0f goroutines (%.0f -> %.0f), want at most one per query (+8)", n, extra, base, during)
	}
}
