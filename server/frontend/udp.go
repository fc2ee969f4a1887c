package frontend

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"
)

// udpReadSize bounds a query; a larger datagram is cut by the kernel
// (MSG_TRUNC) and dropped. No legitimate QUERY comes near it.
const udpReadSize = 4096

// udpSocket is one SO_REUSEPORT socket and its reader.
type udpSocket struct {
	f       *Frontend
	c       *net.UDPConn
	laddr   net.Addr
	pktinfo bool            // wildcard bind: reply from the query's destination
	base    context.Context // parent of query contexts, for values only
	raw     *rawSender      // nil where raw sends are not available
	out     *replyBatch     // the reader's; nil where raw sends are not available
}

// readLoop reads datagrams in batches (see batchReader), parses each in
// place, answers what needs no worker (sending those replies together once
// the batch is handled) and hands each other admitted query to a worker.
func (s *udpSocket) readLoop() {
	f := s.f
	defer f.readers.Done()
	br, err := newBatchReader(s.c, s.pktinfo)
	if err != nil {
		f.log.Error("frontend: udp reader", "addr", s.laddr, "err", err)
		return
	}
	var backoff time.Duration
	handle := func(n int) bool {
		backoff = 0
		// One clock reading per batch: a query's latency runs from the
		// read that returned it, which is when it was taken off the queue.
		now := time.Now()
		for i := range n {
			pkt, cut, peer, oob := br.datagram(i)
			q := f.receiveUDP(s, pkt, cut, peer)
			if q == nil {
				continue
			}
			if s.pktinfo {
				q.dst, q.ifindex, _ = parseDst(oob)
			}
			q.start, q.inReader = now, s.out != nil
			f.process(q, pkt, s.base)
		}
		if s.out != nil {
			s.out.flush()
		}
		return !f.stopping.Load()
	}
	for {
		err := br.read(handle)
		if err == nil || f.stopping.Load() || errors.Is(err, net.ErrClosed) {
			return
		}
		backoff = min(max(2*backoff, time.Millisecond), 100*time.Millisecond)
		f.log.Warn("frontend: udp read", "addr", s.laddr, "err", err)
		time.Sleep(backoff)
	}
}

// receiveUDP is what a datagram meets before parsing: short, cut (the
// kernel's MSG_TRUNC) and response packets are dropped unanswered, then
// admission sheds past MaxInflight. It returns the admitted query or nil.
func (f *Frontend) receiveUDP(tr transport, pkt []byte, cut bool, peer netip.AddrPort) *query {
	if len(pkt) < headerLen || cut || pkt[2]&0x80 != 0 {
		f.m.malformed.Inc() // short, cut, or a response: never answered
		return nil
	}
	if !f.admit() {
		f.m.shed[protoUDP].Inc()
		return nil
	}
	q := f.getQuery()
	q.f, q.tr, q.proto, q.admitted, q.pooled = f, tr, protoUDP, true, true
	q.setPeer(peer)
	return q
}

// setPeer records the client as both an AddrPort (for sending) and a
// *net.UDPAddr inside q (for RemoteAddr, without allocating).
func (q *query) setPeer(peer netip.AddrPort) {
	q.peer = peer
	a := peer.Addr()
	if a.Is4() {
		b := a.As4()
		q.uaddr.IP = q.ip[:copy(q.ip[:], b[:])]
	} else {
		q.ip = a.As16()
		q.uaddr.IP = q.ip[:]
		q.uaddr.Zone = a.Zone()
		if !a.Is4In6() {
			q.family = 1
		}
	}
	q.uaddr.Port = int(peer.Port())
	q.raddr = &q.uaddr
}

func (s *udpSocket) send(q *query, frame []byte) error {
	if q.inReader && s.out.add(q, frame[2:]) {
		return nil // sent with the rest of the batch's replies
	}
	var oob []byte
	if q.dst.IsValid() {
		if n := buildSrc(q.oob[:], q.dst, q.ifindex); n > 0 {
			oob = q.oob[:n]
		}
	}
	if s.raw != nil {
		return s.raw.send(frame[2:], oob, q.peer)
	}
	if oob != nil {
		_, _, err := s.c.WriteMsgUDPAddrPort(frame[2:], oob, q.peer)
		return err
	}
	_, err := s.c.WriteToUDPAddrPort(frame[2:], q.peer)
	return err
}

func (s *udpSocket) localAddr() net.Addr { return s.laddr }

func (s *udpSocket) finished(*query) {}
