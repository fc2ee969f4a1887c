package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// stub is an upstream DNS server on 127.0.0.1 answering from zone-file
// records. Names it has no record for are NXDOMAIN with the SOA of soaZone;
// while down it drops every query. queries counts client queries; the
// forward stage's loop probes are counted apart.
type stub struct {
	*resolvertest.Server
	records []dns.RR
	soa     dns.RR
	queries atomic.Int64
	probes  atomic.Int64
	down    atomic.Bool
}

func startStub(t testing.TB, soaZone string, records ...string) *stub {
	t.Helper()
	s := &stub{}
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatalf("stub record %q: %v", r, err)
		}
		s.records = append(s.records, rr)
	}
	soa, err := dns.NewRR(soaZone + " 60 IN SOA ns." + soaZone + " hostmaster." + soaZone + " 1 7200 1800 86400 30")
	if err != nil {
		t.Fatal(err)
	}
	s.soa = soa
	s.Server = resolvertest.StartServer(t, s)
	return s
}

func (s *stub) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if s.down.Load() {
		return
	}
	q := r.Question[0]
	if dns.IsSubDomain(loopZone, q.Name) {
		s.probes.Add(1)
	} else {
		s.queries.Add(1)
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	known := false
	for _, rr := range s.records {
		if !strings.EqualFold(rr.Header().Name, q.Name) {
			continue
		}
		known = true
		if rr.Header().Rrtype == q.Qtype {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
	}
	if len(m.Answer) == 0 {
		m.Ns = []dns.RR{dns.Copy(s.soa)}
		if !known {
			m.Rcode = dns.RcodeNameError
		}
	}
	_ = w.WriteMsg(m)
}

// loopZone is where the forward stage's loop probes are.
const loopZone = "clusterdns-loop-detect."

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var _ io.Writer = (*logBuffer)(nil)

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
		opts.Logger = logs.logger()
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
