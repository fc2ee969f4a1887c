package cache

import (
	"context"
	"net"
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
)

// nopWriter discards replies, so benchmarks measure the cache alone. Like
// the front end, it takes replies as bytes (WriteWire).
type nopWriter struct{}

func (nopWriter) WriteWire([]byte) error { return nil }

var benchAddr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}

func (nopWriter) LocalAddr() net.Addr         { return benchAddr }
func (nopWriter) RemoteAddr() net.Addr        { return benchAddr }
func (nopWriter) WriteMsg(*dns.Msg) error     { return nil }
func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (nopWriter) Close() error                { return nil }
func (nopWriter) TsigStatus() error           { return nil }
func (nopWriter) TsigTimersOnly(bool)         {}
func (nopWriter) Hijack()                     {}

// benchReplies are the hits measured: one address, and a CNAME chain.
var benchReplies = []struct {
	name, qname string
	answer      []string
}{
	{"A", "web.example.", []string{"web.example. 3600 IN A 10.0.0.1"}},
	{"CNAME+2A", "www.example.", []string{"www.example. 3600 IN CNAME web.example.", "web.example. 3600 IN A 10.0.0.1", "web.example. 3600 IN A 10.0.0.2"}},
}

// hitHandler returns a cache stage with the reply for name already cached.
func hitHandler(tb testing.TB, name string, answer []string) resolver.Handler {
	tb.Helper()
	c, err := New(Default(), Options{})
	if err != nil {
		tb.Fatal(err)
	}
	h := c.Wrap(answering(dns.RcodeSuccess, answer, nil))
	if _, err := h.ServeDNS(context.Background(), nopWriter{}, q(name, dns.TypeA)); err != nil {
		tb.Fatal(err)
	}
	return h
}

func BenchmarkCacheHit(b *testing.B) {
	for _, br := range benchReplies {
		qname, answer := br.qname, br.answer
		b.Run(br.name, func(b *testing.B) {
			h := hitHandler(b, qname, answer)
			r := q(qname, dns.TypeA)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if rcode, err := h.ServeDNS(ctx, nopWriter{}, r); err != nil || rcode != dns.RcodeSuccess {
					b.Fatalf("rcode %d err %v", rcode, err)
				}
			}
		})
		b.Run(br.name+"/parallel", func(b *testing.B) {
			h := hitHandler(b, qname, answer)
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := q(qname, dns.TypeA)
				for pb.Next() {
					if _, err := h.ServeDNS(ctx, nopWriter{}, r); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
