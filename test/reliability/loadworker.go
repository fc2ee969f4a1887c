package reliability

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// pend is a query waiting for its reply.
type pend struct {
	q    Question
	sent time.Time
}

// worker owns one socket: its sender is run, its receiver and reaper are
// goroutines that end when run closes the socket.
type worker struct {
	l     *Load
	slots chan struct{} // one token per outstanding query
	start time.Time     // of the load, for Trouble

	mu      sync.Mutex // guards following
	conn    net.Conn
	broken  bool // TCP: the receiver saw the connection end
	pending map[uint16]pend
	nextID  uint16
	res     Result

	recv sync.WaitGroup // receivers of every connection this worker opened
}

func (w *worker) dial(ctx context.Context) error {
	network := "udp"
	if w.l.TCP {
		network = "tcp"
	}
	d := net.Dialer{Timeout: w.l.Timeout}
	c, err := d.DialContext(ctx, network, w.l.Addr.String())
	if err != nil {
		return fmt.Errorf("load: dial %s %s: %w", network, w.l.Addr, err)
	}
	w.mu.Lock()
	w.conn, w.broken = c, false
	w.mu.Unlock()
	w.recv.Go(func() { w.receive(c) })
	return nil
}

func (w *worker) close() {
	w.mu.Lock()
	c := w.conn
	w.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
	w.recv.Wait()
}

// run sends queries until the shared count, the time bound or ctx ends,
// then waits for the outstanding ones and closes the socket.
func (w *worker) run(ctx context.Context, start, stop time.Time, next, lastSend *atomic.Int64) {
	l := w.l
	reaperDone := make(chan struct{})
	reaperStop := make(chan struct{})
	go func() { defer close(reaperDone); w.reap(reaperStop) }()
	defer func() {
		w.drain(ctx)
		close(reaperStop)
		<-reaperDone
		w.close()
	}()
	for ctx.Err() == nil {
		i := int(next.Add(1) - 1)
		if i >= l.Count {
			return
		}
		if l.Rate > 0 {
			at := start.Add(time.Duration(float64(i) / l.Rate * float64(time.Second)))
			if at.After(stop) || !sleepUntil(ctx, l.Stop, at) {
				return
			}
		}
		if !time.Now().Before(stop) || !w.acquire(ctx, l.Stop, stop) {
			return
		}
		if err := w.send(ctx, l.Query(i)); err != nil {
			w.mu.Lock()
			w.res.Errors++
			w.mu.Unlock()
			<-w.slots
			continue
		}
		lastSend.Store(time.Now().UnixNano())
	}
}

func sleepUntil(ctx context.Context, stop <-chan struct{}, at time.Time) bool {
	select {
	case <-stop:
		return false
	default:
	}
	d := time.Until(at)
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
	case <-ctx.Done():
	}
	return false
}

// acquire takes a window slot, waiting at most until end.
func (w *worker) acquire(ctx context.Context, stop <-chan struct{}, end time.Time) bool {
	select {
	case <-stop:
		return false
	case w.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(time.Until(end))
	defer t.Stop()
	select {
	case w.slots <- struct{}{}:
		return true
	case <-t.C:
	case <-stop:
	case <-ctx.Done():
	}
	return false
}

// send writes one query; on error the slot is still held by the caller.
func (w *worker) send(ctx context.Context, q Question) error {
	m := new(dns.Msg)
	m.SetQuestion(q.Name, q.Type)
	w.mu.Lock()
	if w.l.TCP && w.broken {
		w.mu.Unlock()
		w.close()
		if err := w.dial(ctx); err != nil {
			return err
		}
		w.mu.Lock()
	}
	id := w.nextID
	for {
		id++
		if _, busy := w.pending[id]; !busy {
			break
		}
	}
	w.nextID = id
	m.Id = id
	c := w.conn
	w.mu.Unlock()
	b, err := m.Pack()
	if err != nil {
		return fmt.Errorf("pack %s: %w", q.Name, err)
	}
	if w.l.TCP {
		b = append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
		_ = c.SetWriteDeadline(time.Now().Add(w.l.Timeout))
	}
	w.mu.Lock()
	w.pending[id] = pend{q: q, sent: time.Now()}
	w.mu.Unlock()
	if _, err := c.Write(b); err != nil {
		w.mu.Lock()
		delete(w.pending, id)
		w.mu.Unlock()
		return fmt.Errorf("write: %w", err)
	}
	w.mu.Lock()
	w.res.Sent++
	w.mu.Unlock()
	return nil
}

// drain waits until every outstanding query is answered or timed out.
func (w *worker) drain(ctx context.Context) {
	deadline := time.Now().Add(w.l.Timeout + 100*time.Millisecond)
	for {
		w.mu.Lock()
		n := len(w.pending)
		w.mu.Unlock()
		if n == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// reap turns queries older than Timeout into timeouts, every 10 ms.
func (w *worker) reap(stop <-chan struct{}) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		final := false
		select {
		case <-stop:
			final = true
		case <-t.C:
		}
		now := time.Now()
		w.mu.Lock()
		for id, p := range w.pending {
			if final || now.Sub(p.sent) >= w.l.Timeout {
				delete(w.pending, id)
				w.res.Timeouts++
				w.res.Trouble[int(p.sent.Sub(w.start)/time.Second)]++
				<-w.slots
			}
		}
		w.mu.Unlock()
		if final {
			return
		}
	}
}

// receive reads replies from c until it is closed.
func (w *worker) receive(c net.Conn) {
	buf := make([]byte, 65535)
	for {
		n, err := w.read(c, buf)
		if err != nil {
			if w.l.TCP || errors.Is(err, net.ErrClosed) {
				w.lost(c)
				return
			}
			continue // UDP: an ICMP error for one datagram
		}
		w.handle(buf[:n], time.Now())
	}
}

func (w *worker) read(c net.Conn, buf []byte) (int, error) {
	if !w.l.TCP {
		return c.Read(buf)
	}
	if _, err := io.ReadFull(c, buf[:2]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(buf))
	if _, err := io.ReadFull(c, buf[:n]); err != nil {
		return 0, err
	}
	return n, nil
}

// lost ends a TCP connection: its outstanding queries become errors and the
// sender dials again before its next query.
func (w *worker) lost(c net.Conn) {
	_ = c.Close()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn != c {
		return
	}
	w.broken = true
	for id := range w.pending {
		delete(w.pending, id)
		w.res.Errors++
		<-w.slots
	}
}

func (w *worker) handle(b []byte, now time.Time) {
	if len(b) < 12 {
		w.mu.Lock()
		w.res.Late++
		w.mu.Unlock()
		return
	}
	m := new(dns.Msg)
	perr := m.Unpack(b)
	id := binary.BigEndian.Uint16(b)
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.pending[id]
	// A reply for another question is a stray (a late reply to an ID since
	// reused), not the answer to this query: keep waiting.
	if !ok || (perr == nil && (len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, p.q.Name) || m.Question[0].Qtype != p.q.Type)) {
		w.res.Late++
		return
	}
	delete(w.pending, id)
	<-w.slots
	w.res.Answered++
	lat := now.Sub(p.sent)
	w.res.Latency.Add(lat)
	if lat >= TroubleLatency {
		w.res.Trouble[int(p.sent.Sub(w.start)/time.Second)]++
	}
	var bad error
	switch {
	case perr != nil:
		bad = fmt.Errorf("unparsable reply: %w", perr)
	case m.Rcode == dns.RcodeServerFailure:
		w.res.ServFail++
	case w.l.Check != nil:
		bad = w.l.Check(p.q, m)
	}
	if perr == nil {
		w.res.Rcodes[m.Rcode]++
	}
	if bad != nil {
		w.res.Wrong++
		if len(w.res.WrongSamples) < maxWrongSamples {
			w.res.WrongSamples = append(w.res.WrongSamples, fmt.Sprintf("%s %s: %v", p.q.Name, dns.TypeToString[p.q.Type], bad))
		}
	}
}
