package forward

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// relay is an upstream that hands every query back to a Forward's ServeDNS,
// as a resolver forwarding to us would, and answers with what that wrote
// (SERVFAIL when it wrote nothing). While relaying is off it answers
// NXDOMAIN itself. It records how often it saw each name.
type relay struct {
	*resolvertest.Server
	to       atomic.Pointer[Forward]
	relaying atomic.Bool
	mu       sync.Mutex
	seen     map[string]int // guarded by mu
}

func startRelay(t *testing.T) *relay {
	t.Helper()
	r := &relay{seen: map[string]int{}}
	r.relaying.Store(true)
	r.Server = resolvertest.StartServer(t, r)
	return r
}

func (r *relay) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	r.mu.Lock()
	r.seen[strings.ToLower(q.Question[0].Name)]++
	r.mu.Unlock()
	m := new(dns.Msg)
	f := r.to.Load()
	if !r.relaying.Load() || f == nil {
		m.SetRcode(q, dns.RcodeNameError)
		_ = w.WriteMsg(m)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rec := resolver.NewRecorder(nil)
	rcode, _ := f.ServeDNS(ctx, rec, q)
	if rec.Msg != nil {
		_ = w.WriteMsg(rec.Msg)
		return
	}
	m.SetRcode(q, rcode)
	_ = w.WriteMsg(m)
}

// counts returns the names seen under loopZone and the other ones.
func (r *relay) counts() (probes, others map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	probes, others = map[string]int{}, map[string]int{}
	for n, c := range r.seen {
		if isLoopName(n) {
			probes[n] = c
		} else {
			others[n] = c
		}
	}
	return probes, others
}

// syncLog is a log sink safe for concurrent writers.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startLooping(t *testing.T, cfg Config, rl *relay) (*Forward, *syncLog) {
	t.Helper()
	logs := &syncLog{}
	f, err := New(cfg, Options{Metrics: NewMetrics(nil), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rl.to.Store(f)
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return f, logs
}

func TestLoopDetectedAndUpstreamSkipped(t *testing.T) {
	rl := startRelay(t)
	good := resolvertest.StartServer(t, aHandler("192.0.2.1"))
	cfg := testConfig(rl.Addr, good.Addr) // sequential: the relay is tried first
	cfg.LoopCheck = 50 * time.Millisecond
	f, logs := startLooping(t, cfg, rl)

	want := "forward: forwarding loop through " + rl.Addr
	waitFor(t, "the loop reported by Ready", func() bool { ok, why := f.Ready(); return !ok && why == want })
	if !strings.Contains(logs.String(), "level=ERROR msg=\"forwarding loop detected") || !strings.Contains(logs.String(), "upstream="+rl.Addr) {
		t.Errorf("no error log naming the upstream:\n%s", logs)
	}
	if v := value(t, f.m.looping.WithLabelValues(rl.Addr)); v != 1 {
		t.Errorf("upstream_looping %v, want 1", v)
	}
	if v := value(t, f.m.looping.WithLabelValues(good.Addr)); v != 0 {
		t.Errorf("upstream_looping of the good upstream %v, want 0", v)
	}
	if answeredBy(mustAnswer(t, f, "www.example.org.", dns.TypeA)) != "192.0.2.1" {
		t.Error("not answered by the upstream that does not loop")
	}
	if _, others := rl.counts(); len(others) != 0 {
		t.Errorf("the looping upstream got client queries: %v", others)
	}
	// Each probe went around once: answered SERVFAIL when it came back.
	time.Sleep(3 * cfg.LoopCheck)
	probes, _ := rl.counts()
	for n, c := range probes {
		if c != 1 {
			t.Errorf("probe %s passed the relay %d times, want 1", n, c)
		}
	}

	rl.relaying.Store(false) // the upstream no longer sends our queries back
	waitFor(t, "Ready again once the loop is gone", func() bool { ok, _ := f.Ready(); return ok })
	if !strings.Contains(logs.String(), "forwarding loop gone") {
		t.Errorf("recovery not logged:\n%s", logs)
	}
	if got := mustAnswer(t, f, "again.example.org.", dns.TypeA); got.Rcode != dns.RcodeNameError {
		t.Errorf("after recovery: %s, want NXDOMAIN from the relay, tried first again", dns.RcodeToString[got.Rcode])
	}
}

func TestLoopOnEveryUpstreamIsServfailWithoutSending(t *testing.T) {
	rl := startRelay(t)
	cfg := testConfig(rl.Addr)
	cfg.LoopCheck = time.Hour // the round at Start only
	f, _ := startLooping(t, cfg, rl)
	waitFor(t, "the loop", func() bool { ok, _ := f.Ready(); return !ok })

	got, rcode, err := ask(t, f, resolvertest.Query("www.example.org.", dns.TypeA))
	if got != nil || rcode != dns.RcodeServerFailure || !errors.Is(err, ErrLoop) {
		t.Fatalf("reply %v rcode %s err %v, want nothing written, SERVFAIL, ErrLoop", got, dns.RcodeToString[rcode], err)
	}
	if _, others := rl.counts(); len(others) != 0 {
		t.Errorf("a query was sent into the loop: %v", others)
	}
}

func TestCheckLoopsProbesAgain(t *testing.T) {
	rl := startRelay(t)
	rl.relaying.Store(false)
	cfg := testConfig(rl.Addr)
	cfg.LoopCheck = time.Hour
	f, _ := startLooping(t, cfg, rl)
	waitFor(t, "the probe at Start", func() bool { p, _ := rl.counts(); return len(p) == 1 })
	if ok, why := f.Ready(); !ok {
		t.Fatalf("Ready without a loop: %s", why)
	}
	rl.relaying.Store(true) // e.g. the upstream was reconfigured to forward to us
	f.CheckLoops()
	waitFor(t, "the loop found by the asked-for round", func() bool { ok, _ := f.Ready(); return !ok })
}

func TestForeignProbeNamesForwarded(t *testing.T) {
	good := resolvertest.StartServer(t, aHandler("192.0.2.1"))
	f := start(t, testConfig(good.Addr))
	// Another server's probe (or one of ours from a replaced stage) is an
	// ordinary name: forwarded, so its owner can recognise it.
	name := "0123456789abcdef.0123456789abcdef." + loopZone
	if answeredBy(mustAnswer(t, f, name, dns.TypeA)) != "192.0.2.1" {
		t.Error("a probe name that is not ours was not forwarded")
	}
	if ok, why := f.Ready(); !ok {
		t.Errorf("Ready: %s", why)
	}
}

func TestIsLoopName(t *testing.T) {
	for name, want := range map[string]bool{
		"a.b.clusterdns-loop-detect.":   true,
		"x.CLUSTERDNS-Loop-Detect":      true,
		"clusterdns-loop-detect.":       false,
		"xclusterdns-loop-detect.":      false,
		"a.clusterdns-loop-detect.com.": false,
		"www.example.org.":              false,
		".":                             false,
		"":                              false,
	} {
		if got := isLoopName(name); got != want {
			t.Errorf("isLoopName(%q) = %v, want %v", name, got, want)
		}
	}
}
