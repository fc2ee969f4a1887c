package frontend_test

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/server/frontend"
)

// TestServePacketMatchesSockets: ServePacket (the fuzzers' entry) gives the
// bytes a client gets over a real socket, for answered, rejected and
// unparsable queries, and nothing where a socket gets nothing.
func TestServePacketMatchesSockets(t *testing.T) {
	z := hostileZone(t)
	s := start(t, frontend.Config{}, z)
	edns := withEDNS(query("a.example.", dns.TypeA), 1232, true)
	edns.Id = 3
	for _, c := range []struct {
		name  string
		pkt   []byte
		reply bool
	}{
		{"answer", cat(hdr(1, rdBit, 1, 0, 0, 0), wireName("a", "example"), typeClass(1, 1)), true},
		{"nxdomain", cat(hdr(2, rdBit, 1, 0, 0, 0), wireName("nope", "example"), typeClass(1, 1)), true},
		{"edns", pack(t, edns), true},
		{"refused class", cat(hdr(4, rdBit, 1, 0, 0, 0), wireName("a", "example"), typeClass(1, dns.ClassCHAOS)), true},
		{"formerr header", cat(hdr(5, rdBit, 1, 0, 0, 0), []byte{0xc0, 12}, typeClass(1, 1)), true},
		{"notimp", cat(hdr(6, 5<<11, 1, 0, 0, 0), wireName("a", "example"), typeClass(1, 1)), true},
		{"any", cat(hdr(7, rdBit, 1, 0, 0, 0), wireName("a", "example"), typeClass(dns.TypeANY, 1)), true},
		{"axfr over udp refused, over tcp to the chain", cat(hdr(8, 0, 1, 0, 0, 0), wireName("example"), typeClass(dns.TypeAXFR, 1)), true},
		{"response", cat(hdr(9, 0x8000, 1, 0, 0, 0), wireName("a", "example"), typeClass(1, 1)), false},
		{"short", hdr(10, 0, 1, 0, 0, 0)[:11], false},
	} {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(c.name+" "+network, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				got, err := s.f.ServePacket(ctx, c.pkt, netip.MustParseAddrPort("127.0.0.1:40000"), network == "tcp")
				if err != nil {
					t.Fatal(err)
				}
				if !c.reply {
					if len(got) != 0 {
						t.Fatalf("ServePacket replied % x", got[0])
					}
					return
				}
				if len(got) != 1 {
					t.Fatalf("ServePacket gave %d replies, want 1", len(got))
				}
				want := rawExchange(t, network, s.addr, c.pkt)
				if !bytes.Equal(got[0], want) {
					t.Fatalf("ServePacket % x\nsocket      % x", got[0], want)
				}
			})
		}
	}
}
