package frontend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clusterdns/clusterdns/resolver"
)

// Options are the front end's collaborators.
type Options struct {
	Metrics *Metrics     // nil: unregistered collectors
	Logger  *slog.Logger // nil: discard
}

// ErrStopped is returned by Start after Stop.
var ErrStopped = errors.New("frontend stopped")

// Frontend serves the resolver chain over UDP and TCP.
type Frontend struct {
	cfg     Config
	addrs   []listenAddr
	log     *slog.Logger
	m       *Metrics
	handler atomic.Pointer[handlerBox] // never nil after New
	bufs    bufPool
	queries sync.Pool // zeroed *query, recycled by process

	inflight atomic.Int64  // admitted queries not yet finished
	stopping atomic.Bool   // set once by Stop, before readers are told
	draining atomic.Bool   // set by Stop once every reader has returned
	quit     chan struct{} // closed by Stop
	drained  chan struct{} // closed when draining and inflight is 0
	drainMu  sync.Once

	readers sync.WaitGroup // UDP readers, accept loops, TCP connection readers
	workers sync.WaitGroup // query workers
	work    chan *query    // to idle workers; unbuffered

	mu      sync.Mutex // guards following
	started bool
	udp     []*udpSocket
	tcp     []*net.TCPListener
	bound   []netip.AddrPort
	conns   map[*tcpConn]struct{}

	stopOnce sync.Once
	stopErr  error
}

type handlerBox struct{ h resolver.Handler }

// New checks cfg and prepares a front end serving h; Start binds it.
func New(cfg Config, h resolver.Handler, opts Options) (*Frontend, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: nil handler", ErrConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	f := &Frontend{
		cfg:     cfg,
		log:     opts.Logger,
		m:       opts.Metrics,
		quit:    make(chan struct{}),
		work:    make(chan *query),
		drained: make(chan struct{}),
		conns:   make(map[*tcpConn]struct{}),
	}
	for i, s := range cfg.Listen {
		la, err := parseListen(i, s)
		if err != nil {
			return nil, err
		}
		f.addrs = append(f.addrs, la)
	}
	if f.log == nil {
		f.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if f.m == nil {
		f.m = NewMetrics(nil)
	}
	f.handler.Store(&handlerBox{h})
	return f, nil
}

// SetHandler swaps the chain; queries already running finish on the old one
// and every later query sees the new one. A nil h is ignored.
func (f *Frontend) SetHandler(h resolver.Handler) {
	if h == nil {
		f.log.Error("frontend: SetHandler(nil) ignored")
		return
	}
	f.handler.Store(&handlerBox{h})
}

// Start binds every listen address (UDP sockets and a TCP listener on one
// port each) and starts serving, or binds nothing and returns the first error.
// ctx bounds binding only. A second Start is a no-op.
func (f *Frontend) Start(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopping.Load() {
		return ErrStopped
	}
	if f.started {
		return nil
	}
	var udps [][]*net.UDPConn
	var lns []*net.TCPListener
	for _, la := range f.addrs {
		us, ln, err := bind(ctx, la, f.cfg.UDPSockets)
		if err != nil {
			for i := range udps {
				for _, u := range udps[i] {
					u.Close()
				}
				lns[i].Close()
			}
			return err
		}
		udps = append(udps, us)
		lns = append(lns, ln)
	}
	f.started = true
	base := context.WithoutCancel(ctx)
	for i, la := range f.addrs {
		ap := lns[i].Addr().(*net.TCPAddr).AddrPort()
		f.bound = append(f.bound, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		for _, u := range udps[i] {
			s := &udpSocket{f: f, c: u, laddr: u.LocalAddr(), pktinfo: la.wildcard && oobSize > 0, base: base}
			if raw, err := newRawSender(u); err != nil {
				f.log.Warn("frontend: raw sends unavailable", "addr", s.laddr, "err", err)
			} else {
				s.raw, s.out = raw, newReplyBatch(raw, f.log)
			}
			f.udp = append(f.udp, s)
			f.readers.Add(1)
			go s.readLoop()
		}
		f.tcp = append(f.tcp, lns[i])
		f.readers.Add(1)
		go f.acceptLoop(lns[i], base)
	}
	f.log.Info("frontend listening", "addrs", f.bound, "udp_sockets", len(f.udp))
	return nil
}

// Addrs returns the bound addresses, one per Config.Listen entry, each the
// port of both its UDP sockets and its TCP listener. Nil before Start.
func (f *Frontend) Addrs() []netip.AddrPort {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]netip.AddrPort(nil), f.bound...)
}

// aLongTimeAgo is a deadline that makes blocked reads return at once.
var aLongTimeAgo = time.Unix(1, 0)

// Stop stops reading, lets admitted queries finish (TCP connections close
// after their last reply), then closes every socket. It returns once every
// goroutine it started has ended, or when ctx is done: then sockets are
// closed at once and a query still inside a handler that ignores its
// context ends on its own. Stop is idempotent.
func (f *Frontend) Stop(ctx context.Context) error {
	f.stopOnce.Do(func() { f.stopErr = f.stop(ctx) })
	return f.stopErr
}

func (f *Frontend) stop(ctx context.Context) error {
	f.mu.Lock()
	f.stopping.Store(true)
	close(f.quit)
	for _, s := range f.udp {
		s.c.SetReadDeadline(aLongTimeAgo)
	}
	for _, ln := range f.tcp {
		ln.Close()
	}
	for c := range f.conns {
		c.c.SetReadDeadline(aLongTimeAgo)
	}
	f.mu.Unlock()

	var err error
	readersDone := make(chan struct{})
	go func() { f.readers.Wait(); close(readersDone) }()
	select {
	case <-readersDone:
	case <-ctx.Done():
		f.closeAll()
		<-readersDone // every reader returns once its socket is closed
		err = fmt.Errorf("frontend stop: readers: %w", ctx.Err())
	}
	f.draining.Store(true) // no reader is left to admit a query
	f.checkDrained()
	select {
	case <-f.drained:
	case <-ctx.Done():
	}
	select {
	case <-f.drained:
		f.workers.Wait() // idle workers see quit and end at once
	default:
		if err == nil {
			err = fmt.Errorf("frontend stop: %d queries in flight: %w", f.inflight.Load(), ctx.Err())
		}
	}
	f.closeAll()
	return err
}

// closeAll closes every socket and connection; safe to repeat.
func (f *Frontend) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.udp {
		s.c.Close()
	}
	for c := range f.conns {
		c.c.Close()
	}
}

// admit takes an in-flight slot, or reports false when MaxInflight are busy.
func (f *Frontend) admit() bool {
	if f.inflight.Add(1) > int64(f.cfg.MaxInflight) {
		f.inflight.Add(-1)
		return false
	}
	f.m.inflight.Inc()
	return true
}

// release gives back a slot taken by admit.
func (f *Frontend) release() {
	f.m.inflight.Dec()
	if f.inflight.Add(-1) == 0 && f.draining.Load() {
		f.checkDrained()
	}
}

func (f *Frontend) checkDrained() {
	if f.inflight.Load() == 0 {
		f.drainMu.Do(func() { close(f.drained) })
	}
}

// getQuery returns a zeroed query.
func (f *Frontend) getQuery() *query {
	if q, ok := f.queries.Get().(*query); ok {
		return q
	}
	return new(query)
}

// putQuery zeroes q, which nothing refers to any more, and keeps it for reuse.
func (f *Frontend) putQuery(q *query) {
	*q = query{}
	f.queries.Put(q)
}

// bufPool recycles reply and TCP read buffers of bufSize bytes; larger needs
// are allocated and dropped, so the pool never holds big buffers.
type bufPool struct{ p sync.Pool }

const bufSize = 4096

func (b *bufPool) get() *[]byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return v
	}
	s := make([]byte, bufSize)
	return &s
}

func (b *bufPool) put(p *[]byte) {
	if cap(*p) == bufSize {
		*p = (*p)[:bufSize]
		b.p.Put(p)
	}
}
