package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// startStub starts an upstream stub answering from zone-file records, its
// negatives carrying soaZone's SOA; the forward stage's loop probes are
// counted apart from client queries.
func startStub(t testing.TB, soaZone string, records ...string) *stub {
	t.Helper()
	soa := soaZone + " 60 IN SOA ns." + soaZone + " hostmaster." + soaZone + " 1 7200 1800 86400 30"
	return resolvertest.StartZone(t, soa, loopZone, records...)
}

type (
	stub      = resolvertest.Zone
	logBuffer = resolvertest.LogBuffer
)

// loopZone is where the forward stage's loop probes are.
const loopZone = "clusterdns-loop-detect."

// testConfig is a config for tests: DNS and HTTP on 127.0.0.1 port 0 (one
// shared HTTP listener), default upstream up, short lameduck. extra is
// appended (YAML sections not given here).
func testConfig(t testing.TB, up string, extra string) *Config {
	t.Helper()
	return testConfigHTTP(t, up, `{metrics: "127.0.0.1:0", health: "127.0.0.1:0", ready: "127.0.0.1:0"}`, extra)
}

// testConfigHTTP is testConfig with the given http section.
func testConfigHTTP(t testing.TB, up, http, extra string) *Config {
	t.Helper()
	var defaults []string // unless extra sets them
	for _, d := range []string{"lameduck: 300ms", "limits: {queryTimeout: 2s}"} {
		key, _, _ := strings.Cut(d, " ")
		if !strings.HasPrefix(extra, key) && !strings.Contains(extra, "\n"+key) {
			defaults = append(defaults, d)
		}
	}
	text := fmt.Sprintf(`listen: ["127.0.0.1:0"]
%s
http: %s
forward:
  upstreams: [%q]
  timeout: 300ms
  healthCheck: 50ms
  maxFails: 1
`, strings.Join(defaults, "\n"), http, up) + extra
	cfg, err := ParseConfig("test.yaml", []byte(text))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	return cfg
}

// startServer starts a server on cfg and shuts it down when the test ends.
func startServer(t testing.TB, cfg *Config, opts Options) (*Server, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	if opts.Logger == nil {
		opts.Logger = logs.Logger()
	}
	s, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s, logs
}

func dnsAddr(t testing.TB, s *Server) string {
	t.Helper()
	a := s.DNSAddrs()
	if len(a) == 0 {
		t.Fatal("no DNS address")
	}
	return a[0].String()
}

// exchange sends a query and returns the reply or the error, with a short
// timeout (for queries that may get no answer).
func exchange(network, addr string, m *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: timeout}
	r, _, err := c.Exchange(m, addr)
	return r, err
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

// eventually polls cond every 20 ms for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
