package forward

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// echoStub answers every UDP query with the query itself, QR set and an A
// record appended, without allocating, so the benchmarks' allocations are
// the stage's own.
func echoStub(b *testing.B) string {
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	b.Cleanup(func() {
		_ = pc.Close()
		<-done
	})
	answer := []byte{0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1} // ptr to qname, A IN 60 192.0.2.1
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			// move the additional section (our OPT) behind the answer
			qend := 12
			for qend < n && buf[qend] != 0 {
				qend += int(buf[qend]) + 1
			}
			qend += 5
			if qend > n {
				continue
			}
			copy(buf[qend+len(answer):], buf[qend:n])
			copy(buf[qend:], answer)
			buf[2] |= 0x80
			binary.BigEndian.PutUint16(buf[6:], 1)
			_, _ = pc.WriteToUDPAddrPort(buf[:n+len(answer)], from)
		}
	}()
	return pc.LocalAddr().String()
}

// BenchmarkForward measures a query through the stage to a loopback stub:
// pooled socket, pack, match, unpack, and the loopback round trip.
func BenchmarkForward(b *testing.B) {
	f := start(b, testConfig(echoStub(b)))
	q := resolvertest.Query("bench.example.org.", dns.TypeA)
	rec := resolver.NewRecorder(nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if _, err := f.ServeDNS(ctx, rec, q); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
	if answeredBy(rec.Msg) != "192.0.2.1" {
		b.Fatalf("reply %v", rec.Msg)
	}
}

// BenchmarkForwardDeadlineOnly is BenchmarkForward with a context like the
// front end's, which ends only at its deadline: no Done watcher per query.
func BenchmarkForwardDeadlineOnly(b *testing.B) {
	f := start(b, testConfig(echoStub(b)))
	q := resolvertest.Query("bench.example.org.", dns.TypeA)
	rec := resolver.NewRecorder(nil)
	inner, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	ctx := &deadlineCtx{Context: inner}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.ServeDNS(ctx, rec, q); err != nil {
			b.Fatal(err)
		}
	}
	if answeredBy(rec.Msg) != "192.0.2.1" {
		b.Fatalf("reply %v", rec.Msg)
	}
}

// BenchmarkForwardParallel is BenchmarkForward from many goroutines, which
// exercises the socket pool under contention.
func BenchmarkForwardParallel(b *testing.B) {
	f := start(b, testConfig(echoStub(b)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		q := resolvertest.Query("bench.example.org.", dns.TypeA)
		rec := resolver.NewRecorder(nil)
		for pb.Next() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if _, err := f.ServeDNS(ctx, rec, q); err != nil {
				b.Error(err)
			}
			cancel()
		}
	})
}

// FuzzMatches checks that reply matching never panics and accepts only
// packets carrying our ID, QR and question.
func FuzzMatches(f *testing.F) {
	q := query{name: "www.example.org.", qtype: dns.TypeA, qclass: dns.ClassINET, bits: bitRD}
	var out [maxQuerySize]byte
	n, qend, err := q.pack(out[:], 0x1234)
	if err != nil {
		f.Fatal(err)
	}
	reply := append([]byte(nil), out[:n]...)
	reply[2] |= 0x80
	f.Add(reply)
	f.Add(out[:n])
	f.Add([]byte{0x12, 0x34, 0x80})
	f.Fuzz(func(t *testing.T, in []byte) {
		if !matches(in, out[:n], qend) {
			return
		}
		m := new(dns.Msg)
		if binary.BigEndian.Uint16(in) != 0x1234 || in[2]&0x80 == 0 {
			t.Fatalf("accepted a packet with ID %x / no QR", in[:3])
		}
		if m.Unpack(in) == nil && (len(m.Question) != 1 || !dns.IsSubDomain(m.Question[0].Name, q.name) ||
			!dns.IsSubDomain(q.name, m.Question[0].Name) || m.Question[0].Qtype != q.qtype) {
			t.Fatalf("accepted a reply with question %v", m.Question)
		}
	})
}
