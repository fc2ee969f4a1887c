package frontend

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// tcpConn is one client connection. Its reader admits queries one after the
// other; they run concurrently (at most Config.TCPPipeline) and their replies
// are written as they complete, in any order (RFC 7766 6.2.1.1).
type tcpConn struct {
	f            *Frontend
	c            *net.TCPConn
	laddr, raddr net.Addr
	family       int
	base         context.Context
	slots        chan struct{} // one token per query in flight
	refs         atomic.Int32  // the reader plus each query; the last closes c
	wmu          sync.Mutex    // serialises replies
}

var errStopping = errors.New("stopping")

func (f *Frontend) acceptLoop(ln *net.TCPListener, base context.Context) {
	defer f.readers.Done()
	var backoff time.Duration
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if f.stopping.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			f.log.Warn("frontend: tcp accept", "addr", ln.Addr(), "err", err)
			select {
			case <-time.After(backoff):
			case <-f.quit:
				return
			}
			continue
		}
		backoff = 0
		f.mu.Lock()
		if f.stopping.Load() || len(f.conns) >= f.cfg.TCPMaxConns {
			stopping := f.stopping.Load()
			f.mu.Unlock()
			if !stopping {
				f.m.tcpRejected.Inc()
			}
			c.SetLinger(0) // reset: leave no TIME_WAIT behind for a flood
			c.Close()
			if stopping {
				return
			}
			continue
		}
		tc := &tcpConn{f: f, c: c, laddr: c.LocalAddr(), raddr: c.RemoteAddr(), base: base,
			slots: make(chan struct{}, f.cfg.TCPPipeline)}
		if a, ok := tc.raddr.(*net.TCPAddr); ok && a.IP.To4() == nil {
			tc.family = 1
		}
		tc.refs.Store(1)
		f.conns[tc] = struct{}{}
		f.readers.Add(1)
		f.mu.Unlock()
		f.m.tcpConns.Inc()
		go tc.readLoop()
	}
}

func (c *tcpConn) readLoop() {
	f := c.f
	defer f.readers.Done()
	defer c.unref()
	var lb [2]byte
	for {
		// Stop sets a past deadline after setting stopping; check after
		// our own deadline so we never override its.
		c.c.SetReadDeadline(time.Now().Add(f.cfg.TCPIdleTimeout))
		if f.stopping.Load() {
			return
		}
		if _, err := io.ReadFull(c.c, lb[:1]); err != nil {
			return // idle, closed by the peer, or stopping
		}
		c.c.SetReadDeadline(time.Now().Add(min(partialReadTimeout, f.cfg.TCPIdleTimeout)))
		if f.stopping.Load() {
			return
		}
		if _, err := io.ReadFull(c.c, lb[1:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(lb[:]))
		if n < headerLen {
			f.m.malformed.Inc()
			return // not DNS: drop the connection
		}
		bp := f.bufs.get()
		buf := *bp
		if n > len(buf) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		_, err := io.ReadFull(c.c, buf)
		if err == nil {
			err = c.handle(buf)
		}
		f.bufs.put(bp)
		if err != nil {
			return
		}
	}
}

// handle admits one message; it blocks while TCPPipeline queries are in
// flight on this connection, which stops reading it (backpressure).
func (c *tcpConn) handle(b []byte) error {
	f := c.f
	if f.tcpResponse(b) {
		return nil
	}
	select {
	case c.slots <- struct{}{}:
	case <-f.quit:
		return errStopping
	}
	c.refs.Add(1)
	f.process(f.receiveTCP(c, c.raddr, c.family), b, c.base)
	return nil
}

// tcpResponse counts and reports a message with QR set: it is never
// answered, and the connection stays.
func (f *Frontend) tcpResponse(b []byte) bool {
	if b[2]&0x80 != 0 {
		f.m.malformed.Inc()
		return true
	}
	return false
}

// receiveTCP makes the query for one TCP message, admitted or, past
// MaxInflight, not (process then answers REFUSED: the peer is real and
// would otherwise wait for its timeout).
func (f *Frontend) receiveTCP(tr transport, raddr net.Addr, family int) *query {
	q := &query{f: f, tr: tr, raddr: raddr, proto: protoTCP, family: uint8(family)}
	if f.admit() {
		q.admitted = true
	} else {
		f.m.shed[protoTCP].Inc()
	}
	return q
}

func (c *tcpConn) send(q *query, frame []byte) error {
	binary.BigEndian.PutUint16(frame, uint16(len(frame)-2))
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.c.SetWriteDeadline(time.Now().Add(c.f.cfg.TCPIdleTimeout))
	if _, err := c.c.Write(frame); err != nil {
		c.c.Close() // a broken or stalled peer; the reader ends too
		return err
	}
	return nil
}

func (c *tcpConn) localAddr() net.Addr { return c.laddr }

func (c *tcpConn) finished(*query) {
	<-c.slots
	c.unref()
}

// unref drops one reference; the last one closes the connection, so Stop
// and idle both close it only after its in-flight replies are written.
func (c *tcpConn) unref() {
	if c.refs.Add(-1) != 0 {
		return
	}
	c.c.Close()
	c.f.mu.Lock()
	delete(c.f.conns, c)
	c.f.mu.Unlock()
	c.f.m.tcpConns.Dec()
}
