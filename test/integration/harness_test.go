package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
	"github.com/clusterdns/clusterdns/server"
)

// Bounds of the waits in this package.
const (
	queryTimeout = 2 * time.Second
	pollEvery    = 20 * time.Millisecond
	// followBound is the hard bound for an answer to follow an API change;
	// the target (1 s) is only reported, so a loaded machine cannot flake.
	followBound = 5 * time.Second
	followGoal  = time.Second
)

// The stub upstream's SOA, on every negative answer it gives.
const stubSOA = ". 60 IN SOA ns.stub. hostmaster.stub. 1 7200 1800 86400 30"

// startStub starts the only upstream clusterdns ever gets here: a DNS server
// on 127.0.0.1 answering from zone-file records, NXDOMAIN (NODATA for a name
// it knows) with stubSOA otherwise. Every query counts, loop probes too.
func startStub(t *testing.T, records ...string) *resolvertest.Zone {
	t.Helper()
	return resolvertest.StartZone(t, stubSOA, "", records...)
}

type logBuffer = resolvertest.LogBuffer

// configYAML is the configuration of an in-process clusterdns: DNS and HTTP
// on 127.0.0.1 port 0, the stub at up as the only upstream, the cluster
// reached through kubeconfig, TTL 5; kube adds lines under kubernetes:.
func configYAML(up, kubeconfig string, kube ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `listen: ["127.0.0.1:0"]
lameduck: 0s
http: {metrics: "127.0.0.1:0", health: "127.0.0.1:0", ready: "127.0.0.1:0"}
forward:
  upstreams: [%q]
  timeout: 500ms
kubernetes:
  kubeconfig: %q
  ttl: 5
`, up, kubeconfig)
	for _, l := range kube {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// dnsServer is a clusterdns running in this process.
type dnsServer struct {
	addr  string // DNS, UDP and TCP
	ready string // URL of /ready
	logs  *logBuffer
	// startup is how long Start took (the first sync of the index included).
	startup time.Duration
}

// startServer parses yaml, starts clusterdns on it and shuts it down when t
// ends, printing the end of its log if t failed.
func startServer(t *testing.T, yaml string) *dnsServer {
	t.Helper()
	cfg, err := server.ParseConfig("integration.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := server.New(cfg, server.Options{Logger: log})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("server.Start: %v\n%s", err, logs.Tail(20))
	}
	d := &dnsServer{logs: logs, startup: time.Since(began)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("server.Shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("clusterdns log (last 40 lines):\n%s", logs.Tail(40))
		}
	})
	addrs := s.DNSAddrs()
	if len(addrs) == 0 {
		t.Fatal("clusterdns bound no DNS address")
	}
	d.addr = addrs[0].String()
	if a, ok := s.HTTPAddrs()["ready"]; ok {
		d.ready = "http://" + a.String() + "/ready"
	}
	return d
}

// exchange sends m to addr over network ("udp" or "tcp") with a reply buffer
// large enough to see whatever the server sends.
func exchange(network, addr string, m *dns.Msg) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: queryTimeout, UDPSize: dns.MaxMsgSize}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s over %s: %w", m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], network, err)
	}
	return r, nil
}

// serialToken stands for the zone serial in expected SOA records: it changes
// with every Service or EndpointSlice change anywhere in the cluster, and
// tests run in parallel.
const serialToken = "SERIAL"

// clusterSOA is the cluster zone's SOA (ttl 5) as it appears on negatives.
const clusterSOA = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. " + serialToken + " 7200 1800 86400 5"

// withSerial returns c with serialToken replaced by the serial of the first
// SOA in got (0 if there is none, which then fails the comparison).
func withSerial(c resolvertest.Case, got *dns.Msg) resolvertest.Case {
	serial := "0"
	if got != nil {
		for _, rr := range append(append([]dns.RR(nil), got.Ns...), got.Answer...) {
			if soa, ok := rr.(*dns.SOA); ok {
				serial = fmt.Sprint(soa.Serial)
				break
			}
		}
	}
	sub := func(in []string) []string {
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = strings.ReplaceAll(s, serialToken, serial)
		}
		return out
	}
	c.Answer, c.Ns, c.Extra = sub(c.Answer), sub(c.Ns), sub(c.Extra)
	return c
}

// quietTB records a comparison failure instead of reporting it, so a poll
// can ask whether a reply matches yet.
type quietTB struct {
	testing.TB
	failed bool
}

func (q *quietTB) Errorf(string, ...any) { q.failed = true }
func (q *quietTB) Fatalf(string, ...any) { q.failed = true }
func (q *quietTB) Helper()               {}

// matches reports whether got is the whole reply c expects.
func matches(t *testing.T, c resolvertest.Case, got *dns.Msg) bool {
	if got == nil {
		return false
	}
	q := &quietTB{TB: t}
	withSerial(c, got).Check(q, got)
	return !q.failed
}

// label names a case in failures.
func label(c resolvertest.Case) string {
	if c.Name != "" {
		return c.Name
	}
	return c.Qname + " " + dns.TypeToString[c.Qtype]
}

// check sends every case over UDP and over TCP and compares whole replies.
func check(t *testing.T, addr string, cases []resolvertest.Case) {
	t.Helper()
	for _, network := range []string{"udp", "tcp"} {
		for _, c := range cases {
			c.Name = network + ": " + label(c)
			got, err := exchange(network, addr, c.Msg())
			if err != nil {
				t.Errorf("%s: %v", c.Name, err)
				continue
			}
			withSerial(c, got).Check(t, got)
		}
	}
}

// authoritative marks every case as an answer of the index: AA is checked.
func authoritative(cases ...resolvertest.Case) []resolvertest.Case {
	for i := range cases {
		cases[i].AA, cases[i].CheckAA = true, true
	}
	return cases
}

// waitFor polls c over UDP every 20 ms until the reply matches, for at most
// bound, and returns the time from since until the matching reply. On
// timeout it fails t showing the last difference.
func waitFor(t *testing.T, addr string, c resolvertest.Case, since time.Time, bound time.Duration) time.Duration {
	t.Helper()
	return waitForOn(t, "udp", addr, c, since, bound)
}

// waitForOn is waitFor over network.
func waitForOn(t *testing.T, network, addr string, c resolvertest.Case, since time.Time, bound time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		got, err := exchange(network, addr, c.Msg())
		if err == nil && matches(t, c, got) {
			return time.Since(since)
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("%s: still no match after %v: %v", label(c), bound, err)
			}
			withSerial(c, got).Check(t, got)
			t.Fatalf("%s: still no match after %v (difference above)", label(c), bound)
		}
		time.Sleep(pollEvery)
	}
}

// follow waits for c after a change made at since and reports the delay
// against the 1 s goal (reported, not asserted; followBound is the bound).
func follow(t *testing.T, addr, what string, c resolvertest.Case, since time.Time) time.Duration {
	t.Helper()
	d := waitFor(t, addr, c, since, followBound)
	verdict := "within"
	if d > followGoal {
		verdict = "OVER"
	}
	t.Logf("FIGURE follow %-40s %7.1f ms (%s the %v goal)", what, float64(d.Microseconds())/1000, verdict, followGoal)
	return d
}

// httpGet returns the status and body of url.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// waitHTTP polls url until cond holds on its status and body, for at most
// bound, and returns the last status and body.
func waitHTTP(t *testing.T, url string, bound time.Duration, cond func(code int, body string) bool) (int, string) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		code, body := httpGet(t, url)
		if cond(code, body) || time.Now().After(deadline) {
			return code, body
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// svcName is the FQDN of service svc in namespace ns.
func svcName(svc, ns string) string { return svc + "." + ns + ".svc.cluster.local." }

// repoRoot is the repository root: go test runs in test/integration.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	return root
}
