package frontend_test

import (
	"context"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/server/frontend"
)

func newFrontend(t *testing.T, cfg frontend.Config, h resolver.Handler) *frontend.Frontend {
	t.Helper()
	cfg.Listen = []string{"127.0.0.1:0"}
	if cfg.UDPSockets == 0 {
		cfg.UDPSockets = 2
	}
	f, err := frontend.New(cfg, h, frontend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// settleGoroutines waits (bounded) until at most n goroutines run.
func settleGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStopWaitsForInflight(t *testing.T) {
	base := runtime.NumGoroutine()
	b := newBlocking()
	f := newFrontend(t, frontend.Config{}, b)
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	addr := f.Addrs()[0].String()

	udpReply := make(chan *dns.Msg, 1)
	go func() {
		c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
		r, _, _ := c.Exchange(query("blocku.example.", dns.TypeA), addr)
		udpReply <- r
	}()
	tc := dialTCP(t, addr)
	writeTCP(t, tc, query("blockt.example.", dns.TypeA))
	for range 2 {
		select {
		case <-b.entered:
		case <-time.After(5 * time.Second):
			t.Fatal("queries did not reach the handler")
		}
	}

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopped <- f.Stop(ctx)
	}()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned %v while queries were in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(b.release)
	// Both replies still go out, then the TCP connection is closed.
	if r := <-udpReply; r == nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("UDP reply after Stop began: %v", r)
	}
	if r := readTCP(t, tc); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("TCP reply after Stop began: %v", r)
	}
	if _, err := tc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("TCP after its last reply: %v, want EOF", err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return")
	}
	tc.Close()
	settleGoroutines(t, base)

	if err := f.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := f.Start(context.Background()); !errors.Is(err, frontend.ErrStopped) {
		t.Fatalf("Start after Stop: %v, want ErrStopped", err)
	}
}

func TestStopGivesUpAtContext(t *testing.T) {
	base := runtime.NumGoroutine()
	stuck := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := resolver.HandlerFunc{N: "stuck", F: func(context.Context, dns.ResponseWriter, *dns.Msg) (int, error) {
		entered <- struct{}{}
		<-stuck // ignores its context
		return dns.RcodeServerFailure, nil
	}}
	f := newFrontend(t, frontend.Config{}, h)
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := dialUDP(f.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(pack(t, query("a.example.", dns.TypeA)))
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := f.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop: %v, want DeadlineExceeded", err)
	}
	close(stuck)
	settleGoroutines(t, base)
}

func TestStopBeforeStart(t *testing.T) {
	f := newFrontend(t, frontend.Config{}, newZone(t))
	if err := f.Stop(context.Background()); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	if err := f.Start(context.Background()); !errors.Is(err, frontend.ErrStopped) {
		t.Fatalf("Start after Stop: %v", err)
	}
	if a := f.Addrs(); a != nil {
		t.Fatalf("Addrs %v, want nil", a)
	}
}

func TestStartFailsOnBusyPort(t *testing.T) {
	first := start(t, frontend.Config{}, newZone(t))
	f, err := frontend.New(frontend.Config{Listen: []string{"127.0.0.1:0", first.addr}}, newZone(t), frontend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = f.Start(context.Background())
	if err == nil {
		f.Stop(context.Background())
		t.Fatal("Start on a held port succeeded")
	}
	if !strings.Contains(err.Error(), first.addr) {
		t.Fatalf("error %q does not name %s", err, first.addr)
	}
	if f.Addrs() != nil {
		t.Fatal("a failed Start left addresses bound")
	}
}
