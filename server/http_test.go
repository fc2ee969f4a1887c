package server

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

func TestHTTPEndpoints(t *testing.T) {
	up := startStub(t, "example.", "www.example. 300 IN A 192.0.2.1")
	s, _ := startServer(t, testConfig(t, up.Addr, ""), Options{Version: "v9.9.9-test"})
	addrs := s.HTTPAddrs()
	if len(addrs) != 3 || addrs["metrics"] != addrs["health"] || addrs["health"] != addrs["ready"] {
		t.Fatalf("HTTPAddrs %v: want metrics, health and ready on one shared listener", addrs)
	}
	if _, ok := addrs["debug"]; ok {
		t.Fatal("debug endpoint served without being configured")
	}
	base := "http://" + addrs["ready"].String()
	resolvertest.Exchange(t, "udp", dnsAddr(t, s), resolvertest.Query("www.example.", dns.TypeA))

	for _, c := range []struct {
		path string
		code int
		body string
	}{
		{"/health", 200, "OK\n"},
		{"/ready", 200, "OK\n"},
		// nothing else is served without http.debug
		{"/", 404, ""},
		{"/debug/pprof/", 404, ""},
		{"/debug/pprof/heap", 404, ""},
		{"/debug/pprof/cmdline", 404, ""},
		{"/debug/vars", 404, ""},
		{"/metrics/x", 404, ""},
		{"/health/", 404, ""},
		{"/readyz", 404, ""},
		{"/nothing", 404, ""},
	} {
		code, body := httpGet(t, base+c.path)
		if code != c.code || (c.body != "" && body != c.body) {
			t.Errorf("GET %s: %d %q, want %d %q", c.path, code, body, c.code, c.body)
		}
	}

	code, body := httpGet(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`clusterdns_build_info{goversion="` + runtime.Version() + `",version="v9.9.9-test"} 1`,
		`clusterdns_reloads_total{result="failure"} 0`,
		"go_goroutines ",
		"process_cpu_seconds_total ",
		"clusterdns_requests_total{",
		"clusterdns_responses_total{",
		"clusterdns_cache_",
		"clusterdns_forward_",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestHTTPSeparateListeners(t *testing.T) {
	up := startStub(t, "example.", "www.example. 300 IN A 192.0.2.1")
	cfg := testConfigHTTP(t, up.Addr, `{metrics: "127.0.0.1:0", health: "127.0.0.2:0", ready: "", debug: "127.0.0.1:0"}`, "")
	s, _ := startServer(t, cfg, Options{})
	addrs := s.HTTPAddrs()
	if len(addrs) != 3 || addrs["metrics"] != addrs["debug"] || addrs["metrics"] == addrs["health"] {
		t.Fatalf("HTTPAddrs %v: want metrics and debug shared, health apart, no ready", addrs)
	}
	metrics, health := "http://"+addrs["metrics"].String(), "http://"+addrs["health"].String()
	for _, c := range []struct {
		url  string
		code int
	}{
		{health + "/health", 200},
		{health + "/metrics", 404},
		{health + "/ready", 404},
		{metrics + "/health", 404},
		{metrics + "/ready", 404},
		{metrics + "/metrics", 200},
		{metrics + "/debug/pprof/cmdline", 200},
		{metrics + "/debug/pprof/", 200},
	} {
		if code, _ := httpGet(t, c.url); code != c.code {
			t.Errorf("GET %s: %d, want %d", c.url, code, c.code)
		}
	}
}

func TestHTTPListenError(t *testing.T) {
	up := startStub(t, "example.", "www.example. 300 IN A 192.0.2.1")
	busy := startStub(t, "example.") // its TCP port is taken
	s, err := New(testConfigHTTP(t, up.Addr, `{metrics: "`+busy.Addr+`", health: "", ready: ""}`, ""), Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "listen http "+busy.Addr+" (metrics)") {
		t.Fatalf("Start: %v, want the busy metrics address named", err)
	}
	if len(s.DNSAddrs()) > 0 {
		if _, err := exchange("udp", s.DNSAddrs()[0].String(), resolvertest.Query("www.example.", dns.TypeA), 300*time.Millisecond); err == nil {
			t.Error("DNS still answers after a failed Start")
		}
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown after a failed Start: %v", err)
	}
}
