package reliability

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Environment variables of the suite.
const (
	envLong   = "CLUSTERDNS_RELIABILITY_LONG"   // "1": the durations issue 6 names
	envReport = "CLUSTERDNS_RELIABILITY_REPORT" // file the Markdown rows are appended to
)

func long() bool { return os.Getenv(envLong) == "1" }

// pick returns the short or the long value of a parameter.
func pick[T any](short, lng T) T {
	if long() {
		return lng
	}
	return short
}

// scenario names a row, marking long runs.
func scenario(name string) string {
	if long() {
		return name + " (long)"
	}
	return name
}

// scenarioTest marks a scenario: skipped with -short (they take minutes);
// otherwise the binary is built first, before any setup worth losing.
func scenarioTest(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("reliability scenario skipped in -short mode")
	}
	clusterdnsBinary(t)
}

// sample starts a Sampler on the child, stopped when t ends at the latest.
func sample(t *testing.T, c *Child, interval time.Duration, gauges ...string) *Sampler {
	t.Helper()
	s := StartSampler(c.PID, c.URL("metrics"), interval, gauges...)
	t.Cleanup(func() { s.Stop() })
	return s
}

// report prints rows as a table and appends them to the report file.
func report(t *testing.T, rows ...Row) {
	t.Helper()
	t.Logf("\n%s", FormatTable(rows))
	if path := os.Getenv(envReport); path != "" {
		if err := AppendMarkdown(path, rows); err != nil {
			t.Errorf("%v", err)
		}
	}
}

// built is the clusterdns binary of this test run, built once. Package
// level because its lifetime is the test binary's.
var built struct {
	once sync.Once
	path string
	err  error
}

// clusterdnsBinary returns the path of a clusterdns built from this tree.
func clusterdnsBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			built.err = err
			return
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		built.path = filepath.Join(cache, "clusterdns-test", "reliability", "clusterdns")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		built.err = BuildBinary(ctx, root, built.path)
	})
	if built.err != nil {
		t.Fatalf("build clusterdns: %v", built.err)
	}
	return built.path
}

// config is the child's configuration: everything on 127.0.0.1 port 0, JSON
// logs, no lameduck. Zero fields keep clusterdns's defaults.
type config struct {
	upstreams   []string // required: stubs only, never resolv.conf
	kubeconfig  string   // "" means no cluster index
	maxInflight int
	tcpConns    int
	tcpIdle     time.Duration
	cacheSize   int
	fwdTimeout  time.Duration
}

func (c config) yaml() string {
	var b strings.Builder
	b.WriteString(`listen: ["127.0.0.1:0"]
lameduck: 0s
log: {level: info, format: json}
http: {metrics: "127.0.0.1:0", health: "127.0.0.1:0", ready: "127.0.0.1:0"}
`)
	var lim []string
	if c.maxInflight > 0 {
		lim = append(lim, fmt.Sprintf("maxInflight: %d", c.maxInflight))
	}
	if c.tcpConns > 0 {
		lim = append(lim, fmt.Sprintf("tcpConns: %d", c.tcpConns))
	}
	if c.tcpIdle > 0 {
		lim = append(lim, fmt.Sprintf("tcpIdleTimeout: %s", c.tcpIdle))
	}
	if len(lim) > 0 {
		fmt.Fprintf(&b, "limits: {%s}\n", strings.Join(lim, ", "))
	}
	if c.cacheSize > 0 {
		fmt.Fprintf(&b, "cache: {enabled: true, size: %d}\n", c.cacheSize)
	}
	var ups []string
	for _, u := range c.upstreams {
		ups = append(ups, fmt.Sprintf("%q", u))
	}
	fmt.Fprintf(&b, "forward:\n  upstreams: [%s]\n", strings.Join(ups, ", "))
	if c.fwdTimeout > 0 {
		fmt.Fprintf(&b, "  timeout: %s\n", c.fwdTimeout)
	}
	if c.kubeconfig != "" {
		fmt.Fprintf(&b, "kubernetes:\n  kubeconfig: %q\n  ttl: 5\n", c.kubeconfig)
	}
	return b.String()
}

// startChild runs clusterdns on cfg until t ends; it must exit cleanly.
func startChild(t *testing.T, cfg config) *Child {
	t.Helper()
	if len(cfg.upstreams) == 0 {
		t.Fatal("config without upstreams would forward to /etc/resolv.conf")
	}
	path := filepath.Join(t.TempDir(), "clusterdns.yaml")
	if err := os.WriteFile(path, []byte(cfg.yaml()), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := StartChild(clusterdnsBinary(t), path, 60*time.Second)
	if err != nil {
		t.Fatalf("%v\nconfig:\n%s", err, cfg.yaml())
	}
	t.Cleanup(func() {
		if err := c.Stop(15 * time.Second); err != nil {
			t.Errorf("clusterdns exit: %v\n%s", err, c.Log(30))
		}
		if t.Failed() {
			t.Logf("clusterdns log (last 30 lines):\n%s", c.Log(30))
		}
	})
	return c
}

// startStub starts a stub upstream closed when t ends.
func startStub(t *testing.T, m StubMode, d time.Duration) *Stub {
	t.Helper()
	s, err := StartStub(m, d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// httpStatus is the status of GET url ("" and 0 on error).
func httpStatus(url string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReady polls the child's /ready until 200, at most bound.
func waitReady(t *testing.T, c *Child, bound time.Duration) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for httpStatus(c.URL("ready")) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("clusterdns not ready after %v\n%s", bound, c.Log(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape reads the child's metrics, failing t on error.
func scrape(t *testing.T, c *Child) Metrics {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := Scrape(ctx, c.URL("metrics"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// exchange sends one UDP query with a 1 s timeout.
func exchange(addr netip.AddrPort, name string, qtype uint16) (*dns.Msg, error) {
	return exchangeTimeout(addr, name, qtype, time.Second)
}

// exchangeTimeout sends one UDP query and waits for the reply at most d.
func exchangeTimeout(addr netip.AddrPort, name string, qtype uint16, d time.Duration) (*dns.Msg, error) {
	c := dns.Client{Net: "udp", Timeout: d, UDPSize: dns.MaxMsgSize}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := c.Exchange(m, addr.String())
	return r, err
}

// waitAnswer polls name every 20 ms until check accepts the reply, at most
// bound, and returns how long it took.
func waitAnswer(addr netip.AddrPort, name string, qtype uint16, check func(*dns.Msg) error, bound time.Duration) (time.Duration, error) {
	start := time.Now()
	var last error
	for time.Since(start) < bound {
		r, err := exchange(addr, name, qtype)
		if err == nil {
			if err = check(r); err == nil {
				return time.Since(start), nil
			}
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	return bound, fmt.Errorf("%s: no good answer within %v: %w", name, bound, last)
}

// background runs l until its bounds or until the returned stop is called;
// stop waits for the result. Replies due when stop is called are awaited.
func background(t *testing.T, l Load) (stop func() Result) {
	t.Helper()
	stopCh := make(chan struct{})
	l.Stop = stopCh
	done := make(chan struct{})
	var (
		res Result
		err error
	)
	go func() { defer close(done); res, err = l.Run(context.Background()) }()
	var once sync.Once
	stop = func() Result {
		once.Do(func() { close(stopCh) })
		<-done
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		return res
	}
	t.Cleanup(func() { stop() })
	return stop
}

// expectA returns a Check: NOERROR with exactly the A records of want for
// the name, or NXDOMAIN for names want maps to nil.
func expectA(want func(name string) ([]netip.Addr, bool)) func(Question, *dns.Msg) error {
	return func(q Question, r *dns.Msg) error {
		addrs, exists := want(q.Name)
		if !exists {
			if r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
				return fmt.Errorf("want NXDOMAIN, got %s with %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
			}
			return nil
		}
		return sameA(r, addrs)
	}
}

// sameA checks r is NOERROR with exactly the A records want.
func sameA(r *dns.Msg, want []netip.Addr) error {
	if r.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("rcode %s, want NOERROR", dns.RcodeToString[r.Rcode])
	}
	var got []netip.Addr
	for _, rr := range r.Answer {
		a, ok := rr.(*dns.A)
		if !ok {
			return fmt.Errorf("unexpected record %s", rr)
		}
		ip, _ := netip.AddrFromSlice(a.A)
		got = append(got, ip.Unmap())
	}
	slices.SortFunc(got, netip.Addr.Compare)
	w := slices.Clone(want)
	slices.SortFunc(w, netip.Addr.Compare)
	if !slices.Equal(got, w) {
		return fmt.Errorf("A %v, want %v", got, w)
	}
	return nil
}

// mib formats bytes.
func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
