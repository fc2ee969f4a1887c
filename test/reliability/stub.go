package reliability

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// StubMode is how a Stub upstream behaves.
type StubMode int32

// Stub modes. Every mode but StubAnswer is a fault.
const (
	// StubAnswer answers every query correctly: StubIP for A, NXDOMAIN
	// under NXZone, NODATA for other types, an empty NOERROR for the root
	// (health probes).
	StubAnswer StubMode = iota
	// StubDead reads queries and never answers.
	StubDead
	// StubServFail answers SERVFAIL.
	StubServFail
	// StubGarbage answers with random bytes, or with the query's header and
	// question followed by junk.
	StubGarbage
	// StubWrongID first sends a reply with another ID carrying PoisonIP,
	// then the correct reply.
	StubWrongID
	// StubWrongQuestion first sends a reply with the right ID for another
	// question carrying PoisonIP for the queried name, then the correct reply.
	StubWrongQuestion
	// StubSlow answers correctly after the delay given to SetMode.
	StubSlow
	// StubFlap answers correctly for one period and is dead for the next.
	StubFlap
)

var stubModeNames = [...]string{"answer", "dead", "servfail", "garbage", "wrong-id", "wrong-question", "slow", "flap"}

func (m StubMode) String() string {
	if int(m) < len(stubModeNames) {
		return stubModeNames[m]
	}
	return fmt.Sprintf("mode(%d)", int32(m))
}

// NXZone is the zone the stub answers NXDOMAIN for (with its SOA).
const NXZone = "nx.test."

// stubTTL is the TTL of positive answers; negative ones carry stubSOA.
const stubTTL = 300

const stubSOA = NXZone + " 60 IN SOA ns.stub.test. hostmaster.stub.test. 1 7200 1800 86400 60"

// PoisonIP is what spoofed replies claim; it is never a right answer.
var PoisonIP = netip.MustParseAddr("192.0.2.66")

// StubIP is the A record the stub gives name: an address in 198.18.0.0/15
// derived from the lower-case name, so any reply can be checked.
func StubIP(name string) netip.Addr {
	h := fnv.New32a()
	h.Write([]byte(strings.ToLower(dns.Fqdn(name))))
	v := h.Sum32() & 0x1ffff
	return netip.AddrFrom4([4]byte{198, 18 + byte(v>>16), byte(v >> 8), byte(v)})
}

// Stub is a fault-injecting upstream on 127.0.0.1 (UDP only: clusterdns
// uses TCP upstream only after a truncated reply, which the stub never
// sends). Probes are health-check queries (". NS"); the counters of the
// other queries are what a load caused.
type Stub struct {
	Addr netip.AddrPort

	Queries  atomic.Int64 // every query received, probes included
	Probes   atomic.Int64 // ". NS" queries received (health probes)
	Tests    atomic.Int64 // queries for names under "test.": what loads ask
	Answered atomic.Int64 // correct replies built (a slow one is sent later)
	Spoofs   atomic.Int64 // mismatched replies sent (wrong ID or question, garbage)

	pc      *net.UDPConn
	mode    atomic.Int32
	delay   atomic.Int64 // StubSlow delay or StubFlap period, in ns
	epoch   time.Time    // StubFlap phases count from here
	soaWire []byte       // stubSOA packed, owner uncompressed

	mu     sync.Mutex // guards timers and closed
	timers map[*time.Timer]struct{}
	closed bool
	wg     sync.WaitGroup // the reader and running delayed replies
}

// StartStub listens on 127.0.0.1:0 in mode m; d is the delay (StubSlow) or
// the period (StubFlap).
func StartStub(m StubMode, d time.Duration) (*Stub, error) {
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		return nil, fmt.Errorf("stub: listen: %w", err)
	}
	soa, err := dns.NewRR(stubSOA)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("stub: soa: %w", err)
	}
	soaWire := make([]byte, dns.Len(soa))
	n, err := dns.PackRR(soa, soaWire, 0, nil, false)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("stub: soa: %w", err)
	}
	s := &Stub{
		Addr:    pc.LocalAddr().(*net.UDPAddr).AddrPort(),
		pc:      pc,
		epoch:   time.Now(),
		soaWire: soaWire[:n],
		timers:  map[*time.Timer]struct{}{},
	}
	s.SetMode(m, d)
	s.wg.Go(s.serve)
	return s, nil
}

// SetMode changes the behaviour for the queries that follow.
func (s *Stub) SetMode(m StubMode, d time.Duration) {
	s.delay.Store(int64(d))
	s.mode.Store(int32(m))
}

// Mode is the current behaviour.
func (s *Stub) Mode() StubMode { return StubMode(s.mode.Load()) }

// LoadQueries is how many queries for load names (under "test.", unlike
// health and loop probes) the stub received.
func (s *Stub) LoadQueries() int64 { return s.Tests.Load() }

// Close stops the stub and waits for its goroutine and delayed replies.
func (s *Stub) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for t := range s.timers {
		if t.Stop() {
			s.wg.Done() // its reply will never run
		}
	}
	s.timers = nil
	s.mu.Unlock()
	err := s.pc.Close()
	s.wg.Wait()
	return err
}

func (s *Stub) serve() {
	buf := make([]byte, 65535)
	out := make([]byte, 0, 512)
	for {
		n, from, err := s.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		raw := buf[:n]
		name, qend, ok := parseQuery(raw)
		if !ok {
			continue
		}
		s.Queries.Add(1)
		switch {
		case name == "." && binary.BigEndian.Uint16(raw[qend-4:]) == dns.TypeNS:
			s.Probes.Add(1)
		case strings.HasSuffix(name, ".test."):
			s.Tests.Add(1)
		}
		switch mode := StubMode(s.mode.Load()); mode {
		case StubAnswer:
			s.send(s.appendAnswer(out[:0], raw[:qend], name), from)
		case StubFlap:
			if p := time.Duration(s.delay.Load()); p <= 0 || (time.Since(s.epoch)/p)%2 == 0 {
				s.send(s.appendAnswer(out[:0], raw[:qend], name), from)
			}
		case StubDead:
		case StubGarbage:
			s.garbage(raw[:qend], from)
		default: // the rarer modes build replies with miekg/dns
			q := new(dns.Msg)
			if q.Unpack(raw) == nil && len(q.Question) == 1 {
				s.reply(mode, q, raw[:qend], from)
			}
		}
	}
}

// parseQuery checks raw is a query with one uncompressed question and
// returns the question's lower-case name and where the question ends.
func parseQuery(raw []byte) (name string, qend int, ok bool) {
	if len(raw) < 12+5 || raw[2]&0x80 != 0 || binary.BigEndian.Uint16(raw[4:]) != 1 {
		return "", 0, false
	}
	var b strings.Builder
	i := 12
	for {
		if i >= len(raw) {
			return "", 0, false
		}
		l := int(raw[i])
		if l == 0 {
			i++
			break
		}
		if l > 63 || i+1+l > len(raw) {
			return "", 0, false
		}
		b.WriteString(strings.ToLower(string(raw[i+1 : i+1+l])))
		b.WriteByte('.')
		i += 1 + l
	}
	if i+4 > len(raw) {
		return "", 0, false
	}
	if b.Len() == 0 {
		b.WriteByte('.')
	}
	return b.String(), i + 4, true
}

// appendAnswer appends the correct reply (see StubAnswer) to the query
// whose header and question are q, packed by hand: the stub must not be
// what limits a load.
func (s *Stub) appendAnswer(out, q []byte, name string) []byte {
	out = append(out, q...)
	out[2] = out[2]&0x79 | 0x80 // QR, keep opcode and RD, clear AA and TC
	out[3] = 0x80               // RA, rcode NOERROR
	binary.BigEndian.PutUint16(out[6:], 0)
	binary.BigEndian.PutUint16(out[8:], 0)
	binary.BigEndian.PutUint16(out[10:], 0)
	qtype := binary.BigEndian.Uint16(q[len(q)-4:])
	switch {
	case name == ".":
	case dns.IsSubDomain(NXZone, name):
		out[3] |= dns.RcodeNameError
		binary.BigEndian.PutUint16(out[8:], 1)
		out = append(out, s.soaWire...)
	case qtype == dns.TypeA:
		binary.BigEndian.PutUint16(out[6:], 1)
		ip := StubIP(name).As4()
		out = append(out, 0xc0, 12, 0, 1, 0, 1, 0, 0, stubTTL>>8, stubTTL&0xff, 0, 4, ip[0], ip[1], ip[2], ip[3])
	default:
		binary.BigEndian.PutUint16(out[8:], 1)
		out = append(out, s.soaWire...)
	}
	s.Answered.Add(1)
	return out
}

func (s *Stub) send(b []byte, to netip.AddrPort) {
	_, _ = s.pc.WriteToUDPAddrPort(b, to)
}

func (s *Stub) reply(mode StubMode, q *dns.Msg, head []byte, to netip.AddrPort) {
	name := strings.ToLower(q.Question[0].Name)
	switch mode {
	case StubServFail:
		m := new(dns.Msg)
		m.SetRcode(q, dns.RcodeServerFailure)
		s.write(m, to)
	case StubWrongID:
		m := s.poisoned(q)
		m.Id = q.Id + 1
		s.spoof(m, to)
		s.send(s.appendAnswer(nil, head, name), to)
	case StubWrongQuestion:
		m := s.poisoned(q)
		m.Question[0].Name = "poison." + q.Question[0].Name
		s.spoof(m, to)
		s.send(s.appendAnswer(nil, head, name), to)
	case StubSlow:
		s.later(time.Duration(s.delay.Load()), s.appendAnswer(nil, head, name), to)
	}
}

func (s *Stub) poisoned(q *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Answer = []dns.RR{&dns.A{
		Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 86400},
		A:   PoisonIP.AsSlice(),
	}}
	return m
}

func (s *Stub) spoof(m *dns.Msg, to netip.AddrPort) {
	if s.write(m, to) {
		s.Spoofs.Add(1)
	}
}

// garbage alternates between random bytes and the query's own header and
// question (QR set, claiming three answers) followed by junk.
func (s *Stub) garbage(head []byte, to netip.AddrPort) {
	var b []byte
	if rand.IntN(2) == 0 {
		b = make([]byte, 2+rand.IntN(100))
		for i := range b {
			b[i] = byte(rand.Uint32())
		}
	} else {
		b = append([]byte(nil), head...)                                            // header and question only
		b[2] |= 0x80                                                                // QR
		binary.BigEndian.PutUint16(b[6:], 3)                                        // ANCOUNT
		binary.BigEndian.PutUint16(b[10:], 0)                                       // ARCOUNT: the OPT is gone
		b = append(b, 0xc0, 0x0c, 0, 1, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 200, 1, 2) // an A record claiming 200 bytes of rdata
	}
	if _, err := s.pc.WriteToUDPAddrPort(b, to); err == nil {
		s.Spoofs.Add(1)
	}
}

// later sends b after d, unless the stub closes first.
func (s *Stub) later(d time.Duration, b []byte, to netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		defer s.wg.Done()
		s.mu.Lock()
		delete(s.timers, t)
		s.mu.Unlock()
		s.send(b, to)
	})
	s.timers[t] = struct{}{}
}

func (s *Stub) write(m *dns.Msg, to netip.AddrPort) bool {
	b, err := m.Pack()
	if err != nil {
		return false
	}
	_, err = s.pc.WriteToUDPAddrPort(b, to)
	return err == nil
}
