package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// The stub upstream answers every A and AAAA question with one fixed address
// and anything else with an empty NOERROR. It builds replies directly in wire
// format, without parsing into dns.Msg, so that in the cache-miss scenario
// the upstream costs far less per query than the forwarder being measured.

const (
	stubTCPIdle  = 10 * time.Second
	maxQuestion  = 12 + 255 + 4 // header, longest name, type and class
	ednsUDPSize  = 1232
	stubReadSize = 65535
)

var (
	stubA    = [4]byte{192, 0, 2, 1}                   // TEST-NET-1
	stubAAAA = [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1} // 2001:db8::1
	// stubOPT is an OPT record: root owner, type 41, UDP size, no extended
	// rcode or flags, no options.
	stubOPT = []byte{0, 0, 41, ednsUDPSize >> 8, ednsUDPSize & 0xff, 0, 0, 0, 0, 0, 0}
)

// errDrop marks a packet that gets no reply (not a query, or malformed).
var errDrop = errors.New("not a well-formed query")

// appendReply appends the reply to query q to out. The TTL is ttl seconds.
func appendReply(out, q []byte, ttl uint32) ([]byte, error) {
	if len(q) < 12 || q[2]&0x80 != 0 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return out, errDrop
	}
	off := 12
	for {
		if off >= len(q) {
			return out, errDrop
		}
		l := int(q[off])
		if l&0xc0 != 0 {
			return out, errDrop // compression in a question: not from a sane client
		}
		off += 1 + l
		if l == 0 {
			break
		}
		if off-12 > 255 {
			return out, errDrop
		}
	}
	if off+4 > len(q) {
		return out, errDrop
	}
	qtype := binary.BigEndian.Uint16(q[off:])
	qend := off + 4
	// An OPT record is the only additional record a plain query carries.
	edns := binary.BigEndian.Uint16(q[10:]) == 1 && len(q) >= qend+11 && q[qend] == 0 &&
		binary.BigEndian.Uint16(q[qend+1:]) == 41

	opcode := q[2] >> 3 & 0xf
	start := len(out)
	out = append(out, q[:qend]...)
	h := out[start:]
	h[2] = 0x80 | q[2]&0x79 // QR, keep opcode and RD, clear AA and TC
	h[3] = 0x80             // RA, rcode NOERROR
	var rdata []byte
	switch {
	case opcode != 0:
		h[3] |= 4 // NOTIMP
	case qtype == 1:
		rdata = stubA[:]
	case qtype == 28:
		rdata = stubAAAA[:]
	}
	ancount := 0
	if rdata != nil {
		ancount = 1
		out = append(out, 0xc0, 12) // pointer to the question name
		out = binary.BigEndian.AppendUint16(out, qtype)
		out = binary.BigEndian.AppendUint16(out, 1) // IN
		out = binary.BigEndian.AppendUint32(out, ttl)
		out = binary.BigEndian.AppendUint16(out, uint16(len(rdata)))
		out = append(out, rdata...)
	}
	h = out[start:]
	binary.BigEndian.PutUint16(h[6:], uint16(ancount))
	binary.BigEndian.PutUint16(h[8:], 0)
	binary.BigEndian.PutUint16(h[10:], 0)
	if edns {
		binary.BigEndian.PutUint16(h[10:], 1)
		out = append(out, stubOPT...)
	}
	return out, nil
}

// stub serves appendReply on one UDP socket and a TCP listener on the same
// port. Stop closes both and waits for every goroutine.
type stub struct {
	ttl  uint32
	udp  *net.UDPConn
	tcp  *net.TCPListener
	log  *slog.Logger
	wg   sync.WaitGroup
	mu   sync.Mutex            // guards conns
	conn map[net.Conn]struct{} // open TCP connections, closed by Stop
}

func startStub(addr string, ttl uint32, log *slog.Logger) (*stub, error) {
	for attempt := 0; ; attempt++ {
		udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		if err != nil {
			return nil, fmt.Errorf("listen udp %s: %w", addr, err)
		}
		tcp, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(udp.LocalAddr().(*net.UDPAddr).AddrPort()))
		if err != nil {
			udp.Close()
			if attempt < 10 && netip.MustParseAddrPort(addr).Port() == 0 {
				continue // the TCP side of that port was taken; try another
			}
			return nil, fmt.Errorf("listen tcp %s: %w", udp.LocalAddr(), err)
		}
		s := &stub{ttl: ttl, udp: udp, tcp: tcp, log: log, conn: make(map[net.Conn]struct{})}
		s.wg.Add(2)
		go s.serveUDP()
		go s.serveTCP()
		return s, nil
	}
}

func (s *stub) Addr() netip.AddrPort { return s.udp.LocalAddr().(*net.UDPAddr).AddrPort() }

func (s *stub) Stop() {
	s.udp.Close()
	s.tcp.Close()
	s.mu.Lock()
	for c := range s.conn {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *stub) serveUDP() {
	defer s.wg.Done()
	in := make([]byte, stubReadSize)
	out := make([]byte, 0, 512)
	for {
		n, from, err := s.udp.ReadFromUDPAddrPort(in)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("udp read", "err", err)
			continue
		}
		reply, err := appendReply(out[:0], in[:n], s.ttl)
		if err != nil {
			continue
		}
		if _, err := s.udp.WriteToUDPAddrPort(reply, from); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Warn("udp write", "to", from, "err", err)
		}
	}
}

func (s *stub) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("tcp accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		s.conn[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serveConn(c)
	}
}

func (s *stub) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conn, c)
		s.mu.Unlock()
		c.Close()
	}()
	in := make([]byte, stubReadSize)
	out := make([]byte, 2, 512)
	for {
		if err := c.SetReadDeadline(time.Now().Add(stubTCPIdle)); err != nil {
			return
		}
		if _, err := io.ReadFull(c, in[:2]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(in))
		if _, err := io.ReadFull(c, in[:n]); err != nil {
			return
		}
		reply, err := appendReply(out[:2], in[:n], s.ttl)
		if err != nil {
			return
		}
		binary.BigEndian.PutUint16(reply, uint16(len(reply)-2))
		if _, err := c.Write(reply); err != nil {
			return
		}
	}
}

// runStub is the "stub" command: serve until SIGINT/SIGTERM.
func runStub(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("stub", flag.ContinueOnError)
	addr := fs.String("listen", "127.0.0.1:0", "UDP and TCP address (loopback)")
	ttl := fs.Uint("ttl", 3600, "TTL of answers, seconds")
	portFile := fs.String("portfile", "", "write the bound port here once serving")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loopbackOnly(*addr); err != nil {
		return err
	}
	s, err := startStub(*addr, uint32(*ttl), slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return err
	}
	defer s.Stop()
	if *portFile != "" {
		if err := writeFileAtomic(*portFile, fmt.Sprintf("%d\n", s.Addr().Port())); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "stub: serving on %s\n", s.Addr())
	<-ctx.Done()
	return nil
}
