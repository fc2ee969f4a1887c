package cache

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// adapter serves a chain the way the front end does: it writes the error
// reply when the chain returns an rcode it did not write.
type adapter struct{ h resolver.Handler }

func (a adapter) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	rcode, _ := a.h.ServeDNS(context.Background(), w, r)
	if !resolver.ClientWrote(rcode) {
		m := new(dns.Msg)
		m.SetRcode(r, rcode)
		_ = w.WriteMsg(m)
	}
}

func TestOverSockets(t *testing.T) {
	next := newFake(func(_ context.Context, r *dns.Msg) (*dns.Msg, int, error) {
		if r.Question[0].Qtype == dns.TypeAAAA {
			return nil, dns.RcodeServerFailure, nil
		}
		return build(r, dns.RcodeSuccess, []string{"web.example. 300 IN A 10.0.0.1"}, []string{"example. 300 IN NS ns.example."}), 0, nil
	})
	e := newEnv(t, Default(), next)
	srv := resolvertest.StartServer(t, adapter{e.h})

	want := resolvertest.Case{Qname: "web.example.", Qtype: dns.TypeA, CheckAA: true,
		Answer: []string{"web.example. 300 IN A 10.0.0.1"},
		Ns:     []string{"example. 300 IN NS ns.example."},
	}
	first := resolvertest.Exchange(t, "udp", srv.Addr, resolvertest.Query("web.example.", dns.TypeA))
	want.AA = true // the miss passes the next stage's reply through
	want.Check(t, first)
	want.AA = false
	e.clock.Advance(time.Second)
	want.Answer = []string{"web.example. 299 IN A 10.0.0.1"}
	want.Ns = []string{"example. 299 IN NS ns.example."}
	for _, network := range []string{"udp", "tcp"} {
		got := resolvertest.Exchange(t, network, srv.Addr, resolvertest.Query("WEB.example.", dns.TypeA))
		want.Check(t, got)
		if got.Question[0].Name != "WEB.example." || got.Answer[0].Header().Name != "WEB.example." {
			t.Errorf("%s: question %q owner %q, want the client's spelling", network, got.Question[0].Name, got.Answer[0].Header().Name)
		}
	}
	for range 2 {
		got := resolvertest.Exchange(t, "udp", srv.Addr, resolvertest.Query("web.example.", dns.TypeAAAA))
		resolvertest.Case{Qname: "web.example.", Qtype: dns.TypeAAAA, Rcode: dns.RcodeServerFailure}.Check(t, got)
	}
	if n := next.total(); n != 2 {
		t.Errorf("next called %d times, want 2 (one A, one AAAA)", n)
	}
}

func TestConcurrent(t *testing.T) {
	for _, size := range []int{16, 8192} { // one shard with evictions; many shards
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			cfg := Default()
			cfg.Size = size
			cfg.ServeStale = time.Minute
			cfg.Prefetch = Prefetch{Amount: 2, Window: time.Minute, Percentage: 90}
			e := newEnv(t, cfg, newFake(func(_ context.Context, r *dns.Msg) (*dns.Msg, int, error) {
				name := r.Question[0].Name
				return build(r, dns.RcodeSuccess, []string{name + " 20 IN TXT " + name}, nil), 0, nil
			}))
			if err := e.c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := range 8 {
				wg.Go(func() {
					for i := range 300 {
						name := fmt.Sprintf("n%d.example.", (g*7+i)%64)
						w := resolver.NewRecorder(nil)
						if _, err := e.h.ServeDNS(context.Background(), w, q(name, dns.TypeTXT)); err != nil {
							errs <- err
							return
						}
						txt, ok := w.Msg.Answer[0].(*dns.TXT)
						if !ok || txt.Txt[0] != name || txt.Hdr.Ttl > 30 {
							errs <- fmt.Errorf("%s: got %v", name, w.Msg.Answer[0])
							return
						}
						if i%50 == 0 {
							e.clock.Advance(3 * time.Second)
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if err := e.c.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := e.c.Len(); n > size || n == 0 {
				t.Errorf("Len = %d, want 1..%d", n, size)
			}
		})
	}
}
