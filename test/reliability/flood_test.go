package reliability

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// hitNames are the names every flood scenario warms into the cache first.
const hitNames = 16

func hitQuestion(i int) Question {
	return Question{Name: fmt.Sprintf("hit%d.example.test.", i%hitNames), Type: dns.TypeA}
}

// warmCache asks every hit name once, so later queries for them are hits.
func warmCache(t *testing.T, c *Child) {
	t.Helper()
	for i := range hitNames {
		q := hitQuestion(i)
		if _, err := waitAnswer(c.DNS, q.Name, q.Type, func(r *dns.Msg) error { return stubAnswers(q, r) }, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

// firstGood polls a cached name every 10 ms with 100 ms timeouts and
// returns how long after since the first right answer came, at most bound.
func firstGood(c *Child, since time.Time, bound time.Duration) (time.Duration, error) {
	q := hitQuestion(0)
	cl := dns.Client{Net: "udp", Timeout: 100 * time.Millisecond}
	for time.Since(since) < bound {
		m := new(dns.Msg)
		m.SetQuestion(q.Name, q.Type)
		if r, _, err := cl.Exchange(m, c.DNS.String()); err == nil && stubAnswers(q, r) == nil {
			return time.Since(since), nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return bound, fmt.Errorf("no right answer within %v", bound)
}

// udpRcvbufErrors is the kernel's count of UDP datagrams dropped on full
// receive buffers, for the whole machine.
func udpRcvbufErrors() (int64, bool) {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, false
	}
	var head []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		for i, k := range head {
			if k == "RcvbufErrors" && i < len(f) {
				n, err := strconv.ParseInt(f[i], 10, 64)
				return n, err == nil
			}
		}
	}
	return 0, false
}

// floodPackets are half cache hits, half names made unique per send
// ("rand-xxxxxxxx", randomized by floodMutate), which miss the cache and
// wait on the slow upstream.
func floodPackets(t *testing.T) [][]byte {
	t.Helper()
	var pkts [][]byte
	for i := range 2 * hitNames {
		name := hitQuestion(i / 2).Name
		if i%2 == 1 {
			name = "rand-00000000.example.test."
		}
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, b)
	}
	return pkts
}

func floodMutate(i int, p []byte) {
	if i%2 == 0 {
		return
	}
	const hex = "0123456789abcdef"
	v := rand.Uint32()
	for k := range 8 { // the 8 characters after "rand-" (label length at 12, "rand-" at 13..17)
		p[18+k] = hex[v>>(4*k)&0xf]
	}
}

// TestUDPFlood floods a server with modest limits far past what it can
// answer: every other packet is a unique name that waits 20 ms on the
// upstream, so maxInflight 64 admits ~3,200 of them a second. Goroutines
// and memory must stay bounded, a probe load shows what a real client gets
// meanwhile, and right answers must come back within a second of the end.
func TestUDPFlood(t *testing.T) {
	scenarioTest(t)
	const (
		maxInflight = 64
		// Stated bounds: one goroutine per admitted query plus a few for
		// scrapes and housekeeping; RSS well under what an unbounded queue
		// of a flood this size would take.
		goroutineSlack = 32
		maxRSS         = 96 << 20
	)
	dur := pick(3*time.Second, 30*time.Second)
	up := startStub(t, StubSlow, 20*time.Millisecond)
	c := startChild(t, config{upstreams: []string{up.Addr.String()}, maxInflight: maxInflight, fwdTimeout: upstreamTimeout})
	warmCache(t, c)
	base := sample(t, c, 100*time.Millisecond)
	time.Sleep(time.Second)
	basePeaks := base.Stop()
	shed0 := scrape(t, c).Value("clusterdns_shed_total")
	drops0, dropsOK := udpRcvbufErrors()

	s := sample(t, c, 100*time.Millisecond)
	probe := background(t, Load{Addr: c.DNS, Workers: 1, Window: 32, Rate: 100, Count: 1 << 20, Duration: dur + 10*time.Second,
		Timeout: time.Second, Query: hitQuestion, Check: stubAnswers})
	fl, err := Flood{Addr: c.DNS, Senders: 4, Count: 1 << 30, Duration: dur, Packets: floodPackets(t), Mutate: floodMutate}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	first, ferr := firstGood(c, time.Now(), 5*time.Second)
	probeRes := probe()
	peaks := s.Stop()
	drops1, _ := udpRcvbufErrors()
	shed := scrape(t, c).Value("clusterdns_shed_total") - shed0

	after, err := Load{Addr: c.DNS, Workers: 2, Window: 32, Rate: 200, Count: 200, Duration: 2 * time.Second,
		Timeout: time.Second, Query: upstreamQuestion("after"), Check: stubAnswers}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("flood: %d packets in %v (%.0f/s), %d replies %v, shed %.0f", fl.Sent, fl.Elapsed.Round(time.Millisecond), fl.Rate(), fl.Replies, fl.Rcodes, shed)
	t.Logf("probe during the flood: %s", &probeRes)
	t.Logf("after the flood: %s", &after)
	t.Logf("baseline: RSS %s, %d goroutines; flood: peak RSS %s, %d goroutines, %d fds", mib(basePeaks.PeakRSS), basePeaks.Goroutines(), mib(peaks.PeakRSS), peaks.Goroutines(), peaks.PeakFDs)

	if ferr != nil {
		t.Errorf("after the flood: %v", ferr)
	} else if first > time.Second {
		t.Errorf("first right answer %v after the flood, want within 1 s", first)
	}
	if shed == 0 {
		t.Errorf("clusterdns_shed_total did not move: the flood (%.0f/s) did not exceed capacity", fl.Rate())
	}
	if g, bound := peaks.Goroutines(), basePeaks.Goroutines()+maxInflight+goroutineSlack; g > bound {
		t.Errorf("peak goroutines %d during the flood, bound %d (baseline + maxInflight + %d)", g, bound, goroutineSlack)
	}
	if peaks.PeakRSS > maxRSS {
		t.Errorf("peak RSS %s during the flood, bound %s", mib(peaks.PeakRSS), mib(maxRSS))
	}
	if after.AnsweredRatio() < 0.99 || after.Wrong > 0 || after.ServFail > 0 {
		t.Errorf("after the flood: %s", &after)
	}
	if probeRes.Wrong > 0 {
		t.Errorf("probe during the flood got wrong answers: %v", probeRes.WrongSamples)
	}
	wrong := fl.Replies - fl.Rcodes[dns.RcodeSuccess] - fl.Rcodes[dns.RcodeServerFailure]
	if wrong > 0 {
		t.Errorf("%d flood replies with an rcode other than NOERROR or SERVFAIL: %v", wrong, fl.Rcodes)
	}
	drops := "n/a"
	if dropsOK {
		drops = fmt.Sprint(drops1 - drops0)
	}
	rows := []Row{{
		Scenario: scenario(fmt.Sprintf("UDP flood past capacity (maxInflight %d)", maxInflight)),
		Offered:  fmt.Sprintf("flood %v: %d pkts (%.0f/s)", dur, fl.Sent, fl.Rate()),
		Sent:     fl.Sent, Answered: fl.Replies, ServFail: fl.Rcodes[dns.RcodeServerFailure], Wrong: wrong,
		PeakRSS: peaks.PeakRSS, Goroutines: peaks.Goroutines(),
		Note: fmt.Sprintf("shed %.0f, kernel rcvbuf drops %s; first right answer %s after; then 200 q: %s answered, p99 %s; bounds: goroutines <= %d, RSS <= %s",
			shed, drops, fmtDuration(first), pct(after.Answered, after.Sent), fmtDuration(after.P99()),
			basePeaks.Goroutines()+maxInflight+goroutineSlack, mib(maxRSS)),
	}}
	pr := LoadRow(scenario("  UDP probe (cached name) during the flood"), &probeRes)
	pr.Note = fmt.Sprintf("%d timeouts (shed packets are dropped, not answered)", probeRes.Timeouts)
	report(t, append(rows, pr)...)
}

// TestTCPConnFlood holds thousands of idle and slow TCP connections against
// a server capped at limits.tcpConns, while a UDP probe load measures the
// service real clients get.
func TestTCPConnFlood(t *testing.T) {
	scenarioTest(t)
	tcpConns := pick(256, 1000)
	conns := pick(2000, 10000)
	dur := pick(5*time.Second, 30*time.Second)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		if lim.Cur < lim.Max { // Go raises it at start; make sure
			lim.Cur = lim.Max
			_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
			_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
		}
		if room := int(lim.Cur) - 1000; conns > room {
			t.Logf("RLIMIT_NOFILE %d: %d connections instead of %d", lim.Cur, room, conns)
			conns = room
		}
	}
	const slack = 32 // goroutines and fds beyond one per connection: scrapes, timers, sockets of the process
	up := startStub(t, StubAnswer, 0)
	c := startChild(t, config{upstreams: []string{up.Addr.String()}, tcpConns: tcpConns})
	warmCache(t, c)
	probeLoad := func(d time.Duration) Load {
		return Load{Addr: c.DNS, Workers: 1, Window: 32, Rate: 200, Count: int(200 * d.Seconds()), Duration: d,
			Timeout: time.Second, Query: hitQuestion, Check: stubAnswers}
	}
	base := sample(t, c, 100*time.Millisecond)
	before, err := probeLoad(time.Second).Run(t.Context())
	basePeaks := base.Stop()
	if err != nil {
		t.Fatal(err)
	}
	rej0 := scrape(t, c).Value("clusterdns_tcp_rejected_total")

	s := sample(t, c, 100*time.Millisecond, "clusterdns_tcp_connections")
	probe := background(t, probeLoad(dur+10*time.Second))
	cf, err := ConnFlood{Addr: c.DNS, Conns: conns, Slow: true, Duration: dur}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	probeRes := probe()
	peaks := s.Stop()
	rejected := scrape(t, c).Value("clusterdns_tcp_rejected_total") - rej0

	// TCP serves again once the connections are gone.
	var tcpBack time.Duration
	q := hitQuestion(1)
	start := time.Now()
	for {
		cl := dns.Client{Net: "tcp", Timeout: 500 * time.Millisecond}
		m := new(dns.Msg)
		m.SetQuestion(q.Name, q.Type)
		if r, _, err := cl.Exchange(m, c.DNS.String()); err == nil && stubAnswers(q, r) == nil {
			tcpBack = time.Since(start)
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Errorf("no TCP answer within 10 s after the connections closed")
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("conn flood: %+v; server rejected %.0f", cf, rejected)
	t.Logf("probe before: %s", &before)
	t.Logf("probe during: %s", &probeRes)
	t.Logf("baseline %d fds %d goroutines; during: peak %d fds, %d goroutines, %.0f tcp connections, RSS %s",
		basePeaks.PeakFDs, basePeaks.Goroutines(), peaks.PeakFDs, peaks.Goroutines(), peaks.Gauges["clusterdns_tcp_connections"], mib(peaks.PeakRSS))

	if open := peaks.Gauges["clusterdns_tcp_connections"]; open > float64(tcpConns) {
		t.Errorf("clusterdns_tcp_connections peaked at %.0f, over limits.tcpConns %d", open, tcpConns)
	}
	if fds, bound := peaks.PeakFDs, basePeaks.PeakFDs+tcpConns+slack; fds > bound {
		t.Errorf("server had %d fds open, bound %d (baseline + tcpConns + %d)", fds, bound, slack)
	}
	if g, bound := peaks.Goroutines(), basePeaks.Goroutines()+tcpConns+slack; g > bound {
		t.Errorf("server had %d goroutines, bound %d (baseline + tcpConns + %d)", g, bound, slack)
	}
	if cf.PeakOpen <= tcpConns {
		t.Errorf("the attack held only %d connections at once, not past the cap of %d", cf.PeakOpen, tcpConns)
	}
	if probeRes.AnsweredRatio() < 0.99 || probeRes.Wrong > 0 || probeRes.ServFail > 0 {
		t.Errorf("UDP service during the attack: %s", &probeRes)
	}
	if p99 := probeRes.P99(); p99 > 250*time.Millisecond {
		t.Errorf("UDP probe p99 %v during the attack, want < 250 ms (before: %v)", p99, before.P99())
	}
	row := LoadRow(scenario(fmt.Sprintf("TCP: %d idle/slow connections (tcpConns %d)", conns, tcpConns)), &probeRes).WithPeaks(peaks)
	row.Offered = fmt.Sprintf("%d conns for %v (%d dials) + UDP probe %d q @ 200/s", conns, dur, cf.Dials, probeRes.Sent)
	row.Note = fmt.Sprintf("columns are the UDP probe's (p99 before: %s); server fds peak %d (idle %d), tcp_connections peak %.0f, %.0f rejected; TCP answers %s after",
		fmtDuration(before.P99()), peaks.PeakFDs, basePeaks.PeakFDs, peaks.Gauges["clusterdns_tcp_connections"], rejected, fmtDuration(tcpBack))
	report(t, row)
}
