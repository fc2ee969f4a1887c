package frontend_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
	"github.com/clusterdns/clusterdns/server/frontend"
)

func writeTCP(t testing.TB, c net.Conn, m *dns.Msg) {
	t.Helper()
	b := pack(t, m)
	if _, err := c.Write(append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func readTCP(t testing.TB, c net.Conn) *dns.Msg {
	t.Helper()
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatalf("read length: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read: %v", err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatalf("unpack: %v", err)
	}
	return m
}

func dialTCP(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

func TestTCPPipelining(t *testing.T) {
	b := newBlocking()
	s := start(t, frontend.Config{}, b)
	c := dialTCP(t, s.addr)
	// One write holding all queries: the slow one first.
	var buf bytes.Buffer
	names := []string{"block.example.", "f1.example.", "f2.example.", "f3.example.", "f4.example."}
	for i, n := range names {
		m := query(n, dns.TypeA)
		m.Id = uint16(i + 1)
		p := pack(t, m)
		buf.Write([]byte{byte(len(p) >> 8), byte(len(p))})
		buf.Write(p)
	}
	if _, err := c.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	// The fast ones come back while the slow one still blocks.
	seen := map[uint16]bool{}
	for range len(names) - 1 {
		m := readTCP(t, c)
		if m.Id == 1 {
			t.Fatal("the blocked query was answered before it was released")
		}
		resolvertest.Case{Qname: names[m.Id-1], Qtype: dns.TypeA, Answer: []string{names[m.Id-1] + " 60 IN A 10.0.0.1"}}.Check(t, m)
		seen[m.Id] = true
	}
	close(b.release)
	if m := readTCP(t, c); m.Id != 1 || m.Rcode != dns.RcodeSuccess {
		t.Fatalf("last reply id %d rcode %d, want the released query", m.Id, m.Rcode)
	}
	if len(seen) != len(names)-1 {
		t.Fatalf("fast replies %v, want %d distinct", seen, len(names)-1)
	}
}

func TestTCPProtocolErrors(t *testing.T) {
	z := newZone(t, "a.example. 60 IN A 10.0.0.1")
	s := start(t, frontend.Config{TCPIdleTimeout: 300 * time.Millisecond}, z)

	t.Run("length below header closes", func(t *testing.T) {
		c := dialTCP(t, s.addr)
		c.Write([]byte{0, 5, 1, 2, 3, 4, 5})
		if _, err := c.Read(make([]byte, 1)); !closedByServer(err) {
			t.Fatalf("read %v, want the connection closed", err)
		}
	})
	t.Run("response ignored, connection kept", func(t *testing.T) {
		c := dialTCP(t, s.addr)
		r := query("a.example.", dns.TypeA)
		r.Response = true
		r.Id = 7
		writeTCP(t, c, r)
		q := query("a.example.", dns.TypeA)
		q.Id = 8
		writeTCP(t, c, q)
		if m := readTCP(t, c); m.Id != 8 {
			t.Fatalf("reply id %d, want 8", m.Id)
		}
	})
	t.Run("idle timeout closes", func(t *testing.T) {
		c := dialTCP(t, s.addr)
		writeTCP(t, c, query("a.example.", dns.TypeA))
		readTCP(t, c)
		if _, err := c.Read(make([]byte, 1)); !closedByServer(err) {
			t.Fatalf("read %v, want the idle connection closed", err)
		}
	})
	t.Run("partial message times out", func(t *testing.T) {
		c := dialTCP(t, s.addr)
		c.Write([]byte{0, 40, 1}) // promises 40 bytes, sends 1
		if _, err := c.Read(make([]byte, 1)); !closedByServer(err) {
			t.Fatalf("read %v, want the stalled connection closed", err)
		}
	})
	s.waitMetric(t, 0, "tcp_connections")
}

// closedByServer reports whether a client read failed because the server
// closed the connection, not because the client's own deadline passed.
func closedByServer(err error) bool {
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestTCPConnectionCap(t *testing.T) {
	z := newZone(t, "a.example. 60 IN A 10.0.0.1")
	s := start(t, frontend.Config{TCPMaxConns: 2}, z)
	var conns []net.Conn
	for range 2 {
		c := dialTCP(t, s.addr)
		writeTCP(t, c, query("a.example.", dns.TypeA))
		readTCP(t, c) // accepted and counted
		conns = append(conns, c)
	}
	// The third is accepted and reset at once; the reset may even beat
	// the client's connect.
	if extra, err := net.DialTimeout("tcp", s.addr, 2*time.Second); err == nil {
		defer extra.Close()
		extra.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := extra.Read(make([]byte, 1)); !closedByServer(err) {
			t.Fatalf("third connection: read %v, want it closed", err)
		}
	}
	s.waitMetric(t, 1, "tcp_rejected_total")
	conns[0].Close()
	s.waitMetric(t, 1, "tcp_connections")
	c := dialTCP(t, s.addr)
	writeTCP(t, c, query("a.example.", dns.TypeA))
	if m := readTCP(t, c); m.Rcode != dns.RcodeSuccess {
		t.Fatalf("after a slot freed: %v", m)
	}
}
