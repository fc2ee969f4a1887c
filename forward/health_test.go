package forward

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

func TestDeadUpstreamSkippedOnceDown(t *testing.T) {
	dead := startUDPStub(t, "", false, nil)
	good := resolvertest.StartServer(t, aHandler("192.0.2.1"))
	cfg := testConfig(dead.addr, good.Addr) // sequential: the dead one first
	cfg.MaxFails = 2
	cfg.Timeout = 100 * time.Millisecond
	cfg.HealthCheck = time.Hour // one probe when marked down, then none
	f := start(t, cfg)
	u := upstreamOf(t, f, dead.addr)

	for i := range cfg.MaxFails {
		if got := answeredBy(mustAnswer(t, f, "a.example.org.", dns.TypeA)); got != "192.0.2.1" {
			t.Fatalf("query %d answered by %q, want the healthy upstream", i, got)
		}
	}
	if !u.down.Load() || value(t, u.healthy) != 0 {
		t.Fatalf("dead upstream not marked down after %d failures", cfg.MaxFails)
	}
	if n := dead.sync(t); n != int64(cfg.MaxFails) {
		t.Fatalf("dead upstream saw %d queries before going down, want %d", n, cfg.MaxFails)
	}
	for range 5 {
		if got := answeredBy(mustAnswer(t, f, "b.example.org.", dns.TypeA)); got != "192.0.2.1" {
			t.Fatalf("answered by %q, want the healthy upstream", got)
		}
	}
	if n := dead.sync(t); n != int64(cfg.MaxFails) {
		t.Errorf("down upstream got %d client queries, want still %d", n, cfg.MaxFails)
	}
}

func TestAllUpstreamsDownFailFast(t *testing.T) {
	d1 := startUDPStub(t, "", false, nil)
	d2 := startUDPStub(t, "", false, nil)
	cfg := testConfig(d1.addr, d2.addr)
	cfg.MaxFails = 1
	cfg.Timeout = 100 * time.Millisecond
	cfg.HealthCheck = time.Hour
	f := start(t, cfg)

	got, rcode, err := ask(t, f, resolvertest.Query("a.example.org.", dns.TypeA))
	if rcode != dns.RcodeServerFailure || got != nil || err == nil {
		t.Fatalf("rcode %d reply %v err %v, want SERVFAIL, nothing written, an error", rcode, got, err)
	}
	n1, n2 := d1.sync(t), d2.sync(t)
	if n1 != 1 || n2 != 1 {
		t.Fatalf("dead upstreams saw %d and %d queries, want 1 each", n1, n2)
	}

	got, rcode, err = ask(t, f, resolvertest.Query("b.example.org.", dns.TypeA))
	if rcode != dns.RcodeServerFailure || got != nil || !errors.Is(err, ErrNoHealthy) {
		t.Fatalf("rcode %d reply %v err %v, want SERVFAIL, nothing written, ErrNoHealthy", rcode, got, err)
	}
	// nothing was sent, so nothing waited for an attempt timeout
	if m1, m2 := d1.sync(t), d2.sync(t); m1 != n1 || m2 != n2 {
		t.Errorf("upstreams marked down got queries: %d->%d, %d->%d", n1, m1, n2, m2)
	}
}

func TestDownUpstreamRecoversThroughProbe(t *testing.T) {
	flaky := startUDPStub(t, "192.0.2.9", false, nil)
	good := resolvertest.StartServer(t, aHandler("192.0.2.1"))
	cfg := testConfig(flaky.addr, good.Addr)
	cfg.MaxFails = 1
	cfg.Timeout = 100 * time.Millisecond
	cfg.HealthCheck = 10 * time.Millisecond
	f := start(t, cfg)
	u := upstreamOf(t, f, flaky.addr)

	if got := answeredBy(mustAnswer(t, f, "a.example.org.", dns.TypeA)); got != "192.0.2.1" {
		t.Fatalf("answered by %q, want the healthy upstream", got)
	}
	if !u.down.Load() {
		t.Fatal("silent upstream not marked down")
	}
	waitFor(t, "a failed probe", func() bool { return value(t, u.hcFailures) >= 1 })

	flaky.answer.Store(true)
	waitFor(t, "the probe to mark the upstream up", func() bool { return !u.down.Load() })
	if value(t, u.healthy) != 1 || flaky.probes.Load() < 2 {
		t.Errorf("healthy gauge %v after %d probes, want 1 after at least 2", value(t, u.healthy), flaky.probes.Load())
	}
	if got := answeredBy(mustAnswer(t, f, "b.example.org.", dns.TypeA)); got != "192.0.2.9" {
		t.Errorf("answered by %q, want the recovered first upstream", got)
	}
}

func TestErrorRcodeTriesNextUpstream(t *testing.T) {
	for _, rc := range []int{dns.RcodeServerFailure, dns.RcodeRefused} {
		t.Run(dns.RcodeToString[rc], func(t *testing.T) {
			var badQueries atomic.Int64
			bad := resolvertest.StartServer(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
				badQueries.Add(1)
				m := new(dns.Msg)
				m.SetRcode(r, rc)
				_ = w.WriteMsg(m)
			}))
			good := resolvertest.StartServer(t, aHandler("192.0.2.1"))
			cfg := testConfig(bad.Addr, good.Addr)
			cfg.MaxFails = 1
			f := start(t, cfg)
			for range 3 {
				if got := answeredBy(mustAnswer(t, f, "a.example.org.", dns.TypeA)); got != "192.0.2.1" {
					t.Fatalf("answered by %q, want the next upstream", got)
				}
			}
			u := upstreamOf(t, f, bad.Addr)
			if badQueries.Load() != 3 || u.down.Load() || u.fails.Load() != 0 {
				t.Errorf("bad upstream: %d queries, down %v, fails %d; want 3, up, 0", badQueries.Load(), u.down.Load(), u.fails.Load())
			}

			only := start(t, testConfig(bad.Addr))
			got, rcode, err := ask(t, only, resolvertest.Query("b.example.org.", dns.TypeA))
			if rcode != dns.RcodeServerFailure || got != nil || !errors.Is(err, ErrUpstreamRcode) {
				t.Errorf("sole upstream answering %s: rcode %d reply %v err %v, want SERVFAIL unwritten, ErrUpstreamRcode",
					dns.RcodeToString[rc], rcode, got, err)
			}
		})
	}
}

func TestMaxConcurrentRefuses(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	stub := resolvertest.StartServer(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		_ = w.WriteMsg(aReply(r, "192.0.2.1"))
	}))
	cfg := testConfig(stub.Addr)
	cfg.MaxConcurrent = 1
	cfg.Timeout = 5 * time.Second
	f := start(t, cfg)

	first := make(chan *dns.Msg, 1)
	go func() {
		got, _, _ := ask(t, f, resolvertest.Query("slow.example.org.", dns.TypeA))
		first <- got
	}()
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("first query never reached the upstream")
	}
	got, rcode, err := ask(t, f, resolvertest.Query("second.example.org.", dns.TypeA))
	close(release)
	if rcode != dns.RcodeRefused || got != nil || !errors.Is(err, ErrMaxConcurrent) {
		t.Errorf("rcode %d reply %v err %v, want REFUSED unwritten, ErrMaxConcurrent", rcode, got, err)
	}
	if n := value(t, f.m.rejects); n != 1 {
		t.Errorf("max_concurrent_rejects_total %v, want 1", n)
	}
	if m := <-first; m == nil || answeredBy(m) != "192.0.2.1" {
		t.Errorf("first query: %v, want its answer", m)
	}
}
