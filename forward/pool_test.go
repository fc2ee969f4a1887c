package forward

import (
	"context"
	"errors"
	"maps"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

func TestExpireRotatesSockets(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		name := "udp"
		if tcp {
			name = "tcp"
		}
		t.Run(name, func(t *testing.T) {
			seen := &recorder{}
			stub := resolvertest.StartServer(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
				seen.add(r, w.RemoteAddr())
				_ = w.WriteMsg(aReply(r, "192.0.2.1"))
			}))
			cfg := testConfig(stub.Addr)
			cfg.ForceTCP = tcp
			var clock atomic.Int64 // the pool's clock, in ns
			clock.Store(time.Now().UnixNano())
			f := start(t, cfg, func(f *Forward) {
				f.now = func() time.Time { return time.Unix(0, clock.Load()) }
			})

			for i := range 4 {
				if i == 2 {
					clock.Add(int64(cfg.Expire))
				}
				mustAnswer(t, f, "rotate.example.org.", dns.TypeA)
			}
			_, from := seen.snapshot()
			if len(from) != 4 {
				t.Fatalf("upstream saw %d queries, want 4", len(from))
			}
			port := func(i int) int { return addrPort(from[i]) }
			if port(0) != port(1) || port(2) != port(3) {
				t.Errorf("source ports %d %d | %d %d: a socket younger than expire was not reused", port(0), port(1), port(2), port(3))
			}
			if port(1) == port(2) {
				t.Errorf("source port %d kept after expire", port(1))
			}
		})
	}
}

func addrPort(a net.Addr) int {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.Port
	case *net.TCPAddr:
		return a.Port
	}
	return -1
}

func TestStopClosesSocketsAndLeavesNoGoroutine(t *testing.T) {
	dead := startUDPStub(t, "", false, nil)
	good := resolvertest.StartServer(t, aHandler("192.0.2.1"))
	cfg := testConfig(dead.addr, good.Addr)
	cfg.MaxFails = 1
	cfg.Timeout = 50 * time.Millisecond
	cfg.HealthCheck = 5 * time.Millisecond
	f, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	mustAnswer(t, f, "a.example.org.", dns.TypeA) // marks the dead one down: its prober runs
	waitFor(t, "probes of the down upstream", func() bool { return dead.probes.Load() >= 2 })
	if leaked := forwardGoroutines(); leaked == "" {
		t.Fatal("no prober goroutine found while running; the check below would prove nothing")
	}

	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := f.Stop(stopCtx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := f.Stop(stopCtx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := f.Start(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("Start after Stop: %v, want ErrStopped", err)
	}
	for _, u := range f.all {
		u.mu.Lock()
		n, closed := len(u.idle[0])+len(u.idle[1]), u.closed
		u.mu.Unlock()
		if n != 0 || !closed {
			t.Errorf("%s: %d idle sockets, closed %v after Stop", u.label, n, closed)
		}
	}
	var leaked string
	for range 200 {
		if leaked = forwardGoroutines(); leaked == "" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if leaked != "" {
		t.Errorf("goroutines left after Stop:\n%s", leaked)
	}
}

// forwardGoroutines returns the stacks of goroutines running Forward
// methods, other than tests' own.
func forwardGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "forward.(*Forward).") && !strings.Contains(g, "forward.Test") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// TestPoolKeepsPeakSockets: after a round of concurrent queries, the next
// round of the same size reuses those sockets instead of dialing new ones
// (a free list smaller than the in-flight peak would close and redial
// sockets on every query under steady load).
func TestPoolKeepsPeakSockets(t *testing.T) {
	const n = 100
	var mu sync.Mutex
	var waiting []func()
	ports := map[int]bool{}
	stub := startUDPStub(t, "192.0.2.1", true, func(pc net.PacketConn, from net.Addr, r *dns.Msg) {
		b, _ := aReply(r, "192.0.2.1").Pack()
		mu.Lock()
		defer mu.Unlock()
		ports[addrPort(from)] = true
		waiting = append(waiting, func() { _, _ = pc.WriteTo(b, from) })
		if len(waiting) == n { // every query of the round is in flight: answer them all
			for _, reply := range waiting {
				reply()
			}
			waiting = nil
		}
	})
	f := start(t, testConfig(stub.addr))
	round := func() map[int]bool {
		mu.Lock()
		clear(ports)
		mu.Unlock()
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if got, _, err := ask(t, f, resolvertest.Query("peak.example.org.", dns.TypeA)); err != nil || got == nil {
					t.Errorf("no answer: %v", err)
				}
			}()
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(ports)
	}
	first := round()
	if len(first) != n {
		t.Fatalf("first round used %d sockets, want %d", len(first), n)
	}
	for p := range round() {
		if !first[p] {
			t.Fatalf("second round dialed a new socket (port %d) instead of reusing the %d pooled ones", p, n)
		}
	}
}
