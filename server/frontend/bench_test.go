package frontend_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/server/frontend"
)

// BenchmarkUDPServe is a full round trip on loopback: a client socket writes
// a query and reads the reply from a front end with a fixed-answer handler.
// Allocations include the server side (the client reuses its buffers).
func BenchmarkUDPServe(b *testing.B) {
	reply := new(dns.Msg)
	reply.Response = true
	rr, err := dns.NewRR("web.default.svc.cluster.local. 5 IN A 10.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	reply.Answer = []dns.RR{rr}
	h := resolver.HandlerFunc{N: "fixed", F: func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		return dns.RcodeSuccess, w.WriteMsg(reply)
	}}
	f, err := frontend.New(frontend.Config{Listen: []string{"127.0.0.1:0"}, UDPSockets: 1}, h, frontend.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer f.Stop(context.Background())
	c, err := net.Dial("udp", f.Addrs()[0].String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	m := new(dns.Msg)
	m.SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
	m.SetEdns0(1232, false)
	q, err := m.Pack()
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1232)
	c.SetDeadline(time.Now().Add(time.Minute))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(q); err != nil {
			b.Fatal(err)
		}
		if n, err := c.Read(buf); err != nil || n < 12 {
			b.Fatalf("read %d: %v", n, err)
		}
	}
}

// wireChain answers every query inline from prepared wire bytes, as a cache
// hit does.
type wireChain struct{ reply []byte }

func (c *wireChain) Name() string { return "wire" }

func (c *wireChain) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	_, rcode, err := c.ServeInline(ctx, w, r)
	return rcode, err
}

func (c *wireChain) ServeInline(_ context.Context, w dns.ResponseWriter, _ *dns.Msg) (bool, int, error) {
	return true, dns.RcodeSuccess, w.(interface{ WriteWire([]byte) error }).WriteWire(c.reply)
}

// BenchmarkUDPServeInline keeps depth queries in flight from one client
// socket to a chain that answers inline from wire bytes, so the reader's
// batches hold several queries, as under load. Per query.
func BenchmarkUDPServeInline(b *testing.B) {
	m := new(dns.Msg)
	m.SetQuestion("www.example.", dns.TypeA)
	rr, err := dns.NewRR("www.example. 300 IN A 192.0.2.1")
	if err != nil {
		b.Fatal(err)
	}
	reply := new(dns.Msg).SetReply(m)
	reply.Answer = []dns.RR{rr}
	reply.Compress = false
	wire, err := reply.Pack()
	if err != nil {
		b.Fatal(err)
	}
	f, err := frontend.New(frontend.Config{Listen: []string{"127.0.0.1:0"}, UDPSockets: 1}, &wireChain{wire}, frontend.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer f.Stop(context.Background())
	m.SetEdns0(1232, false)
	q, err := m.Pack()
	if err != nil {
		b.Fatal(err)
	}
	for _, depth := range []int{1, 16} {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			c, err := net.Dial("udp", f.Addrs()[0].String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 1232)
			c.SetDeadline(time.Now().Add(time.Minute))
			b.ReportAllocs()
			for i := 0; i < b.N; i += depth {
				for range depth {
					if _, err := c.Write(q); err != nil {
						b.Fatal(err)
					}
				}
				for range depth {
					if n, err := c.Read(buf); err != nil || n < 12 {
						b.Fatalf("read %d: %v", n, err)
					}
				}
			}
		})
	}
}
