package reliability

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Flood sends UDP queries as fast as it can from Senders sockets, without
// waiting for replies (a reader per socket only counts them), until Count
// packets or Duration, whichever comes first.
type Flood struct {
	Addr     netip.AddrPort
	Senders  int // sockets, one goroutine each; 0 means 4
	Count    int
	Duration time.Duration
	// Packets are packed queries sent in turn; each sender works on its own
	// copy and writes a fresh ID into it.
	Packets [][]byte
	// Mutate, when set, may rewrite packet i (the sender's copy) before each
	// send, e.g. to randomize a name. Senders call it concurrently, each on
	// its own copies.
	Mutate func(i int, p []byte)
	// Linger keeps counting replies this long after sending ends; 0 closes
	// the sockets at once, leaving the server alone the moment it ends.
	Linger time.Duration
}

// FloodResult is what a Flood did.
type FloodResult struct {
	Sent       int
	SendErrors int
	Replies    int           // replies that came back while sending and lingering
	Rcodes     [16]int       // of Replies
	Elapsed    time.Duration // sending time
}

// Rate is the rate packets were sent at.
func (r FloodResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

// Run floods and returns once every socket is closed.
func (f Flood) Run(ctx context.Context) (FloodResult, error) {
	if f.Count <= 0 || f.Duration <= 0 || len(f.Packets) == 0 {
		return FloodResult{}, errors.New("flood: Count, Duration and Packets are required")
	}
	if !f.Addr.Addr().IsLoopback() {
		return FloodResult{}, fmt.Errorf("flood: %s is not a loopback address", f.Addr)
	}
	if f.Senders <= 0 {
		f.Senders = 4
	}
	conns := make([]*net.UDPConn, f.Senders)
	for i := range conns {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(f.Addr))
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return FloodResult{}, fmt.Errorf("flood: dial %s: %w", f.Addr, err)
		}
		conns[i] = c
	}
	var (
		sent, errs, replies atomic.Int64
		rcodes              [16]atomic.Int64
		senders, readers    sync.WaitGroup
	)
	start := time.Now()
	stop := start.Add(f.Duration)
	for i, c := range conns {
		readers.Go(func() {
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					continue
				}
				replies.Add(1)
				if n >= 4 {
					rcodes[buf[3]&0xf].Add(1)
				}
			}
		})
		senders.Go(func() {
			pkts := make([][]byte, len(f.Packets))
			for j, p := range f.Packets {
				pkts[j] = append([]byte(nil), p...)
			}
			id := uint16(i * 10007)
			for n := 0; ; n++ {
				if n%64 == 0 && (ctx.Err() != nil || time.Now().After(stop)) {
					return
				}
				if sent.Add(1) > int64(f.Count) {
					sent.Add(-1)
					return
				}
				k := (n*f.Senders + i) % len(pkts)
				p := pkts[k]
				if f.Mutate != nil {
					f.Mutate(k, p)
				}
				id++
				binary.BigEndian.PutUint16(p, id)
				if _, err := c.Write(p); err != nil {
					errs.Add(1)
				}
			}
		})
	}
	senders.Wait()
	elapsed := time.Since(start)
	if f.Linger > 0 {
		t := time.NewTimer(f.Linger)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	for _, c := range conns {
		c.Close()
	}
	readers.Wait()
	r := FloodResult{Sent: int(sent.Load()), SendErrors: int(errs.Load()), Replies: int(replies.Load()), Elapsed: elapsed}
	for i := range rcodes {
		r.Rcodes[i] = int(rcodes[i].Load())
	}
	return r, nil
}

// ConnFlood keeps Conns TCP connections open to a server that does nothing
// with them: idle ones send nothing, slow ones (every other one when Slow is
// set) send the first byte of a length prefix and stall. A connection the
// server closes is dialed again after Redial. It ends after Duration or
// MaxDials dials. Workers goroutines each poll their share of connections
// with a non-blocking peek, so it needs no goroutine per connection.
type ConnFlood struct {
	Addr     netip.AddrPort
	Conns    int
	Workers  int // 0 means 32
	Slow     bool
	Duration time.Duration
	Redial   time.Duration // 0 means 1 s
	MaxDials int           // 0 means 20 x Conns
}

// ConnFloodResult is what a ConnFlood did.
type ConnFloodResult struct {
	Dials      int // successful connects
	DialErrors int
	Closed     int    // connections the server closed or reset
	PeakOpen   int    // most connections open at once on our side
	FirstError string // of the failed dials
}

// Run opens the connections and keeps them until Duration ends, then closes
// them all.
func (f ConnFlood) Run(ctx context.Context) (ConnFloodResult, error) {
	if f.Conns <= 0 || f.Duration <= 0 {
		return ConnFloodResult{}, errors.New("connflood: Conns and Duration are required")
	}
	if !f.Addr.Addr().IsLoopback() {
		return ConnFloodResult{}, fmt.Errorf("connflood: %s is not a loopback address", f.Addr)
	}
	if f.Workers <= 0 {
		f.Workers = 32
	}
	if f.Redial <= 0 {
		f.Redial = time.Second
	}
	if f.MaxDials <= 0 {
		f.MaxDials = 20 * f.Conns
	}
	var (
		dials, dialErrs, closed, open, peak atomic.Int64
		firstErr                            atomic.Pointer[string]
		wg                                  sync.WaitGroup
	)
	stop := time.Now().Add(f.Duration)
	for w := range f.Workers {
		n := f.Conns / f.Workers
		if w < f.Conns%f.Workers {
			n++
		}
		wg.Go(func() {
			type slot struct {
				c     *net.TCPConn
				retry time.Time
			}
			slots := make([]slot, n)
			defer func() {
				for _, s := range slots {
					if s.c != nil {
						s.c.Close()
						open.Add(-1)
					}
				}
			}()
			d := net.Dialer{Timeout: 3 * time.Second}
			for pass := 0; ctx.Err() == nil && time.Now().Before(stop); pass++ {
				for i := range slots {
					s := &slots[i]
					if s.c != nil {
						if peerClosed(s.c) {
							s.c.Close()
							s.c = nil
							open.Add(-1)
							closed.Add(1)
							s.retry = time.Now().Add(f.Redial)
						}
						continue
					}
					if time.Now().Before(s.retry) || dials.Load()+dialErrs.Load() >= int64(f.MaxDials) || !time.Now().Before(stop) {
						continue
					}
					c, err := d.DialContext(ctx, "tcp", f.Addr.String())
					if errors.Is(err, syscall.ECONNRESET) {
						// accepted and reset before connect returned: the
						// server refused it, as it does with a cap reached
						dials.Add(1)
						closed.Add(1)
						s.retry = time.Now().Add(f.Redial)
						continue
					}
					if err != nil {
						msg := err.Error()
						firstErr.CompareAndSwap(nil, &msg)
						dialErrs.Add(1)
						s.retry = time.Now().Add(f.Redial)
						continue
					}
					dials.Add(1)
					s.c = c.(*net.TCPConn)
					storeMax(&peak, open.Add(1))
					if f.Slow && (w+i)%2 == 1 {
						_, _ = s.c.Write([]byte{0}) // half a length prefix
					}
				}
				t := time.NewTimer(50 * time.Millisecond)
				select {
				case <-t.C:
				case <-ctx.Done():
				}
				t.Stop()
			}
		})
	}
	wg.Wait()
	r := ConnFloodResult{Dials: int(dials.Load()), DialErrors: int(dialErrs.Load()), Closed: int(closed.Load()), PeakOpen: int(peak.Load())}
	if p := firstErr.Load(); p != nil {
		r.FirstError = *p
	}
	return r, nil
}

// peerClosed peeks at c without blocking: true when the peer closed or
// reset it (or sent something, which these servers never do unasked).
func peerClosed(c *net.TCPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		gone = !errors.Is(err, syscall.EAGAIN) // EOF, a reset, or data
		return true                            // never wait for readiness
	})
	return gone || err != nil
}

// storeMax raises m to v if v is larger.
func storeMax(m *atomic.Int64, v int64) {
	for {
		old := m.Load()
		if v <= old || m.CompareAndSwap(old, v) {
			return
		}
	}
}
