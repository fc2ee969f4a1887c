package frontend_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
	"github.com/clusterdns/clusterdns/server/frontend"
)

func dialUDP(addr string) (net.Conn, error) { return net.Dial("udp", addr) }

func TestQueryContextDeadline(t *testing.T) {
	h := resolver.HandlerFunc{N: "wait", F: func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		dl, ok := ctx.Deadline()
		if !ok || time.Until(dl) > 200*time.Millisecond {
			return dns.RcodeRefused, errors.New("no or wrong deadline")
		}
		<-ctx.Done()
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return dns.RcodeRefused, ctx.Err()
		}
		return dns.RcodeServerFailure, ctx.Err()
	}}
	s := start(t, frontend.Config{QueryTimeout: 200 * time.Millisecond}, h)
	got, _ := exchange(t, "udp", s.addr, query("a.example.", dns.TypeA))
	checkHeader(t, got, dns.RcodeServerFailure, true, false)
}

func TestWriterAfterReturn(t *testing.T) {
	late := make(chan error, 1)
	h := resolver.HandlerFunc{N: "late", F: func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		m := new(dns.Msg).SetReply(r)
		if err := w.WriteMsg(m); err != nil {
			return dns.RcodeServerFailure, err
		}
		if err := w.WriteMsg(m); err != nil { // a second UDP write is ignored
			return dns.RcodeServerFailure, err
		}
		go func() {
			time.Sleep(20 * time.Millisecond)
			late <- w.WriteMsg(m)
		}()
		return dns.RcodeSuccess, nil
	}}
	s := start(t, frontend.Config{}, h)
	got, _ := exchange(t, "udp", s.addr, query("a.example.", dns.TypeA))
	checkHeader(t, got, dns.RcodeSuccess, true, false)
	select {
	case err := <-late:
		if !errors.Is(err, frontend.ErrLateWrite) {
			t.Fatalf("write after return: %v, want ErrLateWrite", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("late writer did not finish")
	}
}

func TestWriteRawBytes(t *testing.T) {
	h := resolver.HandlerFunc{N: "raw", F: func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		if _, ok := w.RemoteAddr().(*net.UDPAddr); !ok {
			return dns.RcodeServerFailure, errors.New("remote is not a UDPAddr")
		}
		if resolver.Proto(w) != "udp" || resolver.Family(w) != 1 {
			return dns.RcodeServerFailure, errors.New("wrong proto or family")
		}
		m := new(dns.Msg).SetReply(r)
		m.Answer = rrs(t, "a.example. 60 IN A 10.0.0.1")
		m.SetEdns0(4096, false) // ours replaces it
		b, err := m.Pack()
		if err != nil {
			return dns.RcodeServerFailure, err
		}
		_, err = w.Write(b)
		return dns.RcodeSuccess, err
	}}
	s := start(t, frontend.Config{}, h)
	got, _ := exchange(t, "udp", s.addr, query("a.example.", dns.TypeA))
	checkHeader(t, got, dns.RcodeSuccess, true, false)
	resolvertest.Case{Qname: "a.example.", Qtype: dns.TypeA, Answer: []string{"a.example. 60 IN A 10.0.0.1"}}.Check(t, got)
}

// TestSharedReplyNotMutated writes one *dns.Msg to many concurrent clients
// of different buffer sizes, as a cache does; the race detector and the
// final comparison catch any write to it.
func TestSharedReplyNotMutated(t *testing.T) {
	shared := new(dns.Msg)
	shared.Question = []dns.Question{{Name: "big.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET}}
	shared.Response = true
	for i := range 100 {
		shared.Answer = append(shared.Answer, &dns.A{Hdr: dns.RR_Header{Name: "big.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A: net.IPv4(10, 0, byte(i/250), byte(i%250+1))})
	}
	shared.Extra = rrs(t, "ns.example. 60 IN A 10.0.0.53")
	shared.SetEdns0(4096, true)
	before := shared.String()
	h := resolver.HandlerFunc{N: "shared", F: func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		return dns.RcodeSuccess, w.WriteMsg(shared)
	}}
	s := start(t, frontend.Config{}, h)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				m := query("big.example.", dns.TypeA)
				network := "udp"
				switch (i + j) % 4 {
				case 1:
					withEDNS(m, 1232, true)
				case 2:
					withEDNS(m, 4096, false)
				case 3:
					network = "tcp"
				}
				c := &dns.Client{Net: network, Timeout: 3 * time.Second}
				r, _, err := c.Exchange(m, s.addr)
				if err != nil || r.Id != m.Id || len(r.Answer) == 0 {
					t.Errorf("exchange: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if after := shared.String(); after != before {
		t.Fatalf("shared reply changed:\nbefore %s\nafter  %s", before, after)
	}
}
