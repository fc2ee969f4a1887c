package frontend_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
	"github.com/clusterdns/clusterdns/server/frontend"
)

// Hand-built packets: hostile input has to be written byte by byte, since
// dns.Msg refuses to pack most of it.

func hdr(id, flags, qd, an, ns, ar uint16) []byte {
	b := make([]byte, 12)
	for i, v := range []uint16{id, flags, qd, an, ns, ar} {
		binary.BigEndian.PutUint16(b[2*i:], v)
	}
	return b
}

// wireName encodes labels as a name, without checks.
func wireName(labels ...string) []byte {
	var b []byte
	for _, l := range labels {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func typeClass(qtype, qclass uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, qtype), qclass)
}

// optRR is an OPT record for the additional section.
func optRR(size uint16, ttl uint32, rdata []byte) []byte {
	b := []byte{0}
	b = binary.BigEndian.AppendUint16(b, dns.TypeOPT)
	b = binary.BigEndian.AppendUint16(b, size)
	b = binary.BigEndian.AppendUint32(b, ttl)
	b = binary.BigEndian.AppendUint16(b, uint16(len(rdata)))
	return append(b, rdata...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

const rdBit = 0x0100

var (
	a63     = strings.Repeat("a", 63)
	b61     = strings.Repeat("b", 61)
	name255 = a63 + "." + a63 + "." + a63 + "." + b61 + "." // 255 bytes on the wire, 253 characters
)

// hostileZone answers the odd but valid names of the table.
func hostileZone(t *testing.T) *zoneHandler {
	return newZone(t,
		"a.example. 60 IN A 10.0.0.1",
		name255+" 60 IN A 10.0.0.2",
		a63+".example. 60 IN A 10.0.0.3",
		`caf\233.example. 60 IN A 10.0.0.4`,
		`a\.b.example. 60 IN A 10.0.0.5`,
		`a\000\ b.example. 60 IN A 10.0.0.6`,
	)
}

// replyHeader is a reply's header, bare of any body: a FORMERR to a packet
// whose body does not parse is exactly this.
func formerrHeader(id uint16, rd bool) []byte {
	flags := uint16(0x8000 | dns.RcodeFormatError)
	if rd {
		flags |= rdBit
	}
	return hdr(id, flags, 0, 0, 0, 0)
}

// TestHostileQueries sends odd and malformed queries over real UDP and TCP
// sockets and checks the reply byte for byte or record for record: bodies
// that do not parse get a bare FORMERR header, valid odd names are answered,
// non-IN classes are REFUSED, and none of the rejected ones reaches the
// chain.
func TestHostileQueries(t *testing.T) {
	z := hostileZone(t)
	s := start(t, frontend.Config{}, z)
	aq := cat(wireName("a", "example"), typeClass(dns.TypeA, dns.ClassINET))
	for _, c := range []struct {
		name string
		pkt  []byte
		// want is the exact reply; when nil, answer holds the records of a
		// reply that must echo the question and carry rcode
		want   []byte
		rcode  int
		answer []string
		chain  bool // reaches the handler
	}{
		{name: "name of 255 bytes", pkt: cat(hdr(1, rdBit, 1, 0, 0, 0), wireName(a63, a63, a63, b61), typeClass(1, 1)),
			answer: []string{name255 + " 60 IN A 10.0.0.2"}, chain: true},
		{name: "name of 256 bytes", pkt: cat(hdr(2, rdBit, 1, 0, 0, 0), wireName(a63, a63, a63, b61+"b"), typeClass(1, 1)),
			want: formerrHeader(2, true)},
		{name: "label of 63", pkt: cat(hdr(3, rdBit, 1, 0, 0, 0), wireName(a63, "example"), typeClass(1, 1)),
			answer: []string{a63 + ".example. 60 IN A 10.0.0.3"}, chain: true},
		{name: "label of 64 (extended label type)", pkt: cat(hdr(4, rdBit, 1, 0, 0, 0), wireName(a63+"a", "example"), typeClass(1, 1)),
			want: formerrHeader(4, true)},
		{name: "label type 0x80", pkt: cat(hdr(5, 0, 1, 0, 0, 0), []byte{0x80, 'a', 0}, typeClass(1, 1)),
			want: formerrHeader(5, false)},
		{name: "non-ASCII byte", pkt: cat(hdr(6, rdBit, 1, 0, 0, 0), wireName("caf\xe9", "example"), typeClass(1, 1)),
			answer: []string{`caf\233.example. 60 IN A 10.0.0.4`}, chain: true},
		{name: "dot inside a label", pkt: cat(hdr(7, rdBit, 1, 0, 0, 0), wireName("a.b", "example"), typeClass(1, 1)),
			answer: []string{`a\.b.example. 60 IN A 10.0.0.5`}, chain: true},
		{name: "NUL and space inside a label", pkt: cat(hdr(8, rdBit, 1, 0, 0, 0), wireName("a\x00 b", "example"), typeClass(1, 1)),
			answer: []string{`a\000\ b.example. 60 IN A 10.0.0.6`}, chain: true},
		{name: "compression pointer to itself", pkt: cat(hdr(9, rdBit, 1, 0, 0, 0), []byte{0xc0, 12}, typeClass(1, 1)),
			want: formerrHeader(9, true)},
		{name: "compression pointer loop of two", pkt: cat(hdr(10, rdBit, 1, 0, 0, 0), []byte{0xc0, 14, 0xc0, 12}, typeClass(1, 1)),
			want: formerrHeader(10, true)},
		{name: "label then pointer back to it", pkt: cat(hdr(11, rdBit, 1, 0, 0, 0), []byte{1, 'a', 0xc0, 12}, typeClass(1, 1)),
			want: formerrHeader(11, true)},
		{name: "pointer past the end", pkt: cat(hdr(12, rdBit, 1, 0, 0, 0), []byte{0xc0, 0xff}, typeClass(1, 1)),
			want: formerrHeader(12, true)},
		{name: "answer record with a pointer loop", pkt: cat(hdr(13, rdBit, 1, 1, 0, 0), aq, []byte{0xc0, 27}, typeClass(1, 1), []byte{0, 0, 0, 60, 0, 4, 1, 2, 3, 4}),
			want: formerrHeader(13, true)},
		{name: "cut inside the name", pkt: cat(hdr(14, rdBit, 1, 0, 0, 0), []byte{1, 'a', 7, 'e', 'x'}),
			want: formerrHeader(14, true)},
		{name: "cut inside the type", pkt: cat(hdr(15, rdBit, 1, 0, 0, 0), wireName("a", "example"), []byte{0}),
			want: formerrHeader(15, true)},
		{name: "cut inside the OPT record", pkt: cat(hdr(16, rdBit, 1, 0, 0, 1), aq, []byte{0, 0, 41, 4}),
			want: formerrHeader(16, true)},
		{name: "OPT option longer than its record", pkt: cat(hdr(17, rdBit, 1, 0, 0, 1), aq, optRR(4096, 0, []byte{0, 10, 0, 200, 1})),
			want: formerrHeader(17, true)},
		{name: "EDNS option of unknown type", pkt: cat(hdr(18, rdBit, 1, 0, 0, 1), aq, optRR(4096, 0, []byte{0xfd, 0xe9, 0, 4, 1, 2, 3, 4})),
			answer: []string{"a.example. 60 IN A 10.0.0.1"}, chain: true},
		{name: "class CHAOS", pkt: cat(hdr(19, rdBit, 1, 0, 0, 0), wireName("a", "example"), typeClass(1, dns.ClassCHAOS)),
			rcode: dns.RcodeRefused},
		{name: "class HESIOD", pkt: cat(hdr(20, rdBit, 1, 0, 0, 0), wireName("a", "example"), typeClass(1, dns.ClassHESIOD)),
			rcode: dns.RcodeRefused},
		{name: "class NONE", pkt: cat(hdr(21, rdBit, 1, 0, 0, 0), wireName("a", "example"), typeClass(1, dns.ClassNONE)),
			rcode: dns.RcodeRefused},
		{name: "class ANY", pkt: cat(hdr(22, rdBit, 1, 0, 0, 0), wireName("a", "example"), typeClass(1, dns.ClassANY)),
			rcode: dns.RcodeRefused},
		{name: "class 0", pkt: cat(hdr(23, rdBit, 1, 0, 0, 0), wireName("a", "example"), typeClass(1, 0)),
			rcode: dns.RcodeRefused},
	} {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(c.name+" "+network, func(t *testing.T) {
				before := z.calls.Load()
				got := rawExchange(t, network, s.addr, c.pkt)
				if c.want != nil {
					if !bytes.Equal(got, c.want) {
						t.Fatalf("reply % x, want % x", got, c.want)
					}
				} else {
					m := new(dns.Msg)
					if err := m.Unpack(got); err != nil {
						t.Fatalf("reply does not unpack: %v", err)
					}
					if m.Id != binary.BigEndian.Uint16(c.pkt) {
						t.Errorf("reply ID %d", m.Id)
					}
					if !bytes.Contains(got, c.pkt[12:12+len(wireQuestion(c.pkt))]) {
						t.Errorf("question not echoed byte for byte")
					}
					want := resolvertest.Case{Qname: m.Question[0].Name, Qtype: m.Question[0].Qtype, Rcode: c.rcode, Answer: c.answer}
					want.Check(t, m)
				}
				if reached := z.calls.Load() != before; reached != c.chain {
					t.Errorf("reached the chain: %v, want %v", reached, c.chain)
				}
			})
		}
	}
}

// wireQuestion returns the question of a packet known to hold one plain
// (uncompressed) question.
func wireQuestion(pkt []byte) []byte {
	off := 12
	for pkt[off] != 0 {
		off += int(pkt[off]) + 1
	}
	return pkt[12 : off+5]
}

// TestHostileCounts: section counts that promise more than the packet
// holds. More questions than are there make the body unparsable (FORMERR
// header). Record counts of a query are not held against it: miekg/dns
// stops at the end of the data, and the front end ignores the records of a
// query anyway, so the question is answered with correct counts.
func TestHostileCounts(t *testing.T) {
	z := hostileZone(t)
	s := start(t, frontend.Config{}, z)
	aq := cat(wireName("a", "example"), typeClass(dns.TypeA, dns.ClassINET))
	for _, c := range []struct {
		name  string
		pkt   []byte
		want  []byte // exact; nil: answered normally
		chain bool
	}{
		{"qdcount 65535", cat(hdr(1, rdBit, 65535, 0, 0, 0), aq), formerrHeader(1, true), false},
		{"qdcount 2, one there", cat(hdr(2, rdBit, 2, 0, 0, 0), aq), formerrHeader(2, true), false},
		{"ancount 65535", cat(hdr(3, rdBit, 1, 65535, 0, 0), aq), nil, true},
		{"nscount 65535", cat(hdr(4, rdBit, 1, 0, 65535, 0), aq), nil, true},
		{"arcount 65535", cat(hdr(5, rdBit, 1, 0, 0, 65535), aq), nil, true},
	} {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(c.name+" "+network, func(t *testing.T) {
				before := z.calls.Load()
				got := rawExchange(t, network, s.addr, c.pkt)
				if c.want != nil && !bytes.Equal(got, c.want) {
					t.Fatalf("reply % x, want % x", got, c.want)
				}
				if c.want == nil {
					m := new(dns.Msg)
					if err := m.Unpack(got); err != nil {
						t.Fatal(err)
					}
					resolvertest.Case{Qname: "a.example.", Qtype: dns.TypeA, Answer: []string{"a.example. 60 IN A 10.0.0.1"}}.Check(t, m)
					if binary.BigEndian.Uint16(got[4:]) != 1 {
						t.Errorf("reply QDCOUNT %d, want 1", binary.BigEndian.Uint16(got[4:]))
					}
				}
				if reached := z.calls.Load() != before; reached != c.chain {
					t.Errorf("reached the chain: %v, want %v", reached, c.chain)
				}
			})
		}
	}
}

// TestHostileNoReply: what must get no reply at all over UDP (a reply could
// be reflected at a victim) is dropped; the reader goes on with the next
// datagram.
func TestHostileNoReply(t *testing.T) {
	z := hostileZone(t)
	s := start(t, frontend.Config{UDPSockets: 1}, z)
	good := query("a.example.", dns.TypeA)
	good.Id = 777
	for _, c := range []struct {
		name string
		pkt  []byte
	}{
		{"11 bytes", hdr(1, rdBit, 1, 0, 0, 0)[:11]},
		{"header only with QR", hdr(2, 0x8000, 0, 0, 0, 0)},
		{"response with a pointer loop", cat(hdr(3, 0x8000|rdBit, 1, 0, 0, 0), []byte{0xc0, 12}, typeClass(1, 1))},
		{"response of 4000 bytes", cat(hdr(4, 0x8000, 0, 0, 0, 0), make([]byte, 3988))},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := s.metric(t, "malformed_total")
			if id := firstReplyID(t, s.addr, c.pkt, pack(t, good)); id != good.Id {
				t.Fatalf("first reply has ID %d, want %d: the bad packet was answered", id, good.Id)
			}
			s.waitMetric(t, before+1, "malformed_total")
		})
	}
}

// TestHugeTCPLengthPrefix: a connection that announces 65535 bytes and
// sends fewer is closed by the partial-read deadline (2 s), long before the
// idle timeout; one that sends all 65535 bytes of garbage gets a FORMERR
// header and stays open.
func TestHugeTCPLengthPrefix(t *testing.T) {
	z := hostileZone(t)
	s := start(t, frontend.Config{TCPIdleTimeout: time.Minute}, z)

	t.Run("announced, not sent", func(t *testing.T) {
		c := dialTCP(t, s.addr)
		c.SetDeadline(time.Now().Add(20 * time.Second)) // far below the idle minute
		if _, err := c.Write(cat([]byte{0xff, 0xff}, hdr(1, rdBit, 1, 0, 0, 0), make([]byte, 1000))); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 1)); !closedByServer(err) {
			t.Fatalf("read: %v, want the connection closed by the server", err)
		}
	})
	t.Run("sent in full", func(t *testing.T) {
		c := dialTCP(t, s.addr)
		body := cat(hdr(2, rdBit, 1, 0, 0, 0), []byte{0xc0, 12})
		body = append(body, make([]byte, 65535-len(body))...)
		if _, err := c.Write(cat([]byte{0xff, 0xff}, body)); err != nil {
			t.Fatal(err)
		}
		got := readRawTCP(t, c)
		if !bytes.Equal(got, formerrHeader(2, true)) {
			t.Fatalf("reply % x, want a FORMERR header", got)
		}
		writeTCP(t, c, query("a.example.", dns.TypeA)) // the connection still serves
		if m := readTCP(t, c); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
			t.Fatalf("next query on the connection: %v", m)
		}
	})
	if z.calls.Load() != 1 {
		t.Errorf("handler called %d times, want once (the last good query)", z.calls.Load())
	}
	s.waitMetric(t, 0, "tcp_connections")
}

func readRawTCP(t *testing.T, c net.Conn) []byte {
	t.Helper()
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatalf("read length: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

// TestAnswerOver64KiB: an answer that does not fit a TCP message (65535
// bytes) is cut at a whole record with TC set, never dropped for failing to
// pack; over UDP it is cut to the client's size, at most 4096 bytes (a
// client asking 65535 over UDP used to get nothing: the datagram was too
// big to send). Every record that fits is
// kept: 16 bytes each (compressed owner), after a 12-byte header, the
// 17-byte question and our 11-byte OPT when the client sent one.
func TestAnswerOver64KiB(t *testing.T) {
	var zone []string
	for i := range 5000 {
		zone = append(zone, fmt.Sprintf("big.example. 60 IN A 10.%d.%d.%d", i>>16, (i>>8)&255, i&255))
	}
	z := newZone(t, zone...)
	s := start(t, frontend.Config{}, z)
	want := rrs(t, zone...)
	for _, c := range []struct {
		name    string
		network string
		edns    uint16
		limit   int
	}{
		{"tcp", "tcp", 0, 65535},
		{"tcp edns", "tcp", 4096, 65535},
		{"udp", "udp", 0, 512},
		{"udp edns 1232", "udp", 1232, 1232},
		{"udp edns 65535 capped at 4096", "udp", 65535, 4096},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := query("big.example.", dns.TypeA)
			opt := 0
			if c.edns > 0 {
				withEDNS(m, c.edns, false)
				opt = 11
			}
			got, n := exchange(t, c.network, s.addr, m)
			fit := (c.limit - 12 - 17 - opt) / 16
			if n > c.limit || !got.Truncated || len(got.Answer) != fit {
				t.Fatalf("%d bytes, TC %v, %d records; want at most %d bytes, TC, %d records", n, got.Truncated, len(got.Answer), c.limit, fit)
			}
			checkHeader(t, got, dns.RcodeSuccess, true, c.edns > 0)
			for i, rr := range got.Answer {
				if rr.String() != want[i].String() {
					t.Fatalf("answer %d: %v, want %v", i, rr, want[i])
				}
			}
		})
	}
}
