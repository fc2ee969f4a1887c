package forward

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	// udpBufSize is the UDP read buffer. We advertise 1232 upstream, so a
	// datagram that fills this buffer is oversized and may have been cut by
	// the read: it is treated as truncated and retried over TCP.
	udpBufSize = 4096
	// maxQuerySize bounds what we send: header, one question, our OPT.
	maxQuerySize = 12 + 255 + 4 + 11
	// maxIdleTCP bounds the TCP free list; a burst beyond it closes
	// connections instead of keeping them open until they expire. The UDP
	// free list is bounded by Config.MaxConcurrent instead: a smaller bound
	// would close and redial sockets on every query whenever more queries
	// are in flight than it allows, which costs more than the query itself.
	maxIdleTCP = 64
)

// bufPool recycles UDP read buffers of udpBufSize bytes.
type bufPool struct{ p sync.Pool }

func (b *bufPool) get() *[]byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return v
	}
	s := make([]byte, udpBufSize)
	return &s
}

func (b *bufPool) put(p *[]byte) { b.p.Put(p) }

// conn is one pooled upstream socket. It is used by one query at a time.
type conn struct {
	nc      net.Conn
	tcp     bool
	created time.Time              // age is measured from here, not from last use, so ports rotate under steady load
	out     [2 + maxQuerySize]byte // the query in flight, after a TCP length prefix
	in      []byte                 // read buffer; for UDP, pooled and set only during a round trip
}

// upstream is one server: its socket pool, health and metric children. It is
// shared by every zone that lists the same address.
type upstream struct {
	addr    netip.AddrPort
	label   string       // addr.String(): metric label and TCP dial address
	udpAddr *net.UDPAddr // never nil

	fails   atomic.Uint32 // consecutive failures
	down    atomic.Bool
	looping atomic.Bool   // a loop probe sent to it came back to us: not used
	wake    chan struct{} // buffered 1: tells the prober the upstream went down

	mu     sync.Mutex // guards following
	idle   [2][]*conn // free lists: [0] UDP, [1] TCP; most recently used last
	closed bool       // Stop ran: returned sockets are closed

	requests     prometheus.Counter
	mismatched   prometheus.Counter
	hcFailures   prometheus.Counter
	duration     prometheus.Observer
	healthy      prometheus.Gauge
	loopingGauge prometheus.Gauge
	responses    *prometheus.CounterVec
	rcodes       [24]atomic.Pointer[prometheus.Counter] // responses children, resolved on first use
}

func newUpstream(ap netip.AddrPort, m *Metrics) *upstream {
	label := ap.String()
	u := &upstream{
		addr:         ap,
		label:        label,
		udpAddr:      net.UDPAddrFromAddrPort(ap),
		wake:         make(chan struct{}, 1),
		requests:     m.requests.WithLabelValues(label),
		mismatched:   m.mismatched.WithLabelValues(label),
		hcFailures:   m.hcFailures.WithLabelValues(label),
		duration:     m.duration.WithLabelValues(label),
		healthy:      m.healthy.WithLabelValues(label),
		loopingGauge: m.looping.WithLabelValues(label),
		responses:    m.responses,
	}
	u.healthy.Set(1)
	u.loopingGauge.Set(0)
	return u
}

// response returns the responses_total child for rcode without a label
// lookup on the hot path.
func (u *upstream) response(rcode int) prometheus.Counter {
	if rcode >= 0 && rcode < len(u.rcodes) {
		if c := u.rcodes[rcode].Load(); c != nil {
			return *c
		}
	}
	name, ok := dns.RcodeToString[rcode]
	if !ok {
		name = "RCODE" + strconv.Itoa(rcode)
	}
	c := u.responses.WithLabelValues(u.label, name)
	if rcode >= 0 && rcode < len(u.rcodes) {
		u.rcodes[rcode].Store(&c)
	}
	return c
}

func transport(tcp bool) int {
	if tcp {
		return 1
	}
	return 0
}

// take pops the most recently used idle socket that has not expired. Expired
// ones are returned in stale for the caller to close once it has dialed a
// replacement, so the new socket cannot be handed the old port.
func (u *upstream) take(tcp bool, now time.Time, expire time.Duration) (c *conn, stale []*conn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	list := u.idle[transport(tcp)]
	for len(list) > 0 {
		c = list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		if now.Sub(c.created) < expire {
			break
		}
		stale = append(stale, c)
		c = nil
	}
	u.idle[transport(tcp)] = list
	return c, stale
}

// put returns a socket to the free list, or closes it when it is too old,
// the list holds maxIdle sockets of its transport or the pool is closed.
func (u *upstream) put(c *conn, now time.Time, expire time.Duration, maxIdle int) {
	u.mu.Lock()
	t := transport(c.tcp)
	if u.closed || now.Sub(c.created) >= expire || len(u.idle[t]) >= maxIdle {
		u.mu.Unlock()
		_ = c.nc.Close()
		return
	}
	u.idle[t] = append(u.idle[t], c)
	u.mu.Unlock()
}

// sweep closes idle sockets that have expired.
func (u *upstream) sweep(now time.Time, expire time.Duration) {
	var stale []*conn
	u.mu.Lock()
	for t, list := range u.idle {
		keep := list[:0]
		for _, c := range list {
			if now.Sub(c.created) >= expire {
				stale = append(stale, c)
			} else {
				keep = append(keep, c)
			}
		}
		clear(list[len(keep):])
		u.idle[t] = keep
	}
	u.mu.Unlock()
	closeAll(stale)
}

// closeIdle closes every idle socket; final also closes those returned later.
func (u *upstream) closeIdle(final bool) {
	u.mu.Lock()
	stale := slices.Concat(u.idle[0], u.idle[1])
	u.idle = [2][]*conn{}
	if final {
		u.closed = true
	}
	u.mu.Unlock()
	closeAll(stale)
}

func closeAll(cs []*conn) {
	for _, c := range cs {
		_ = c.nc.Close()
	}
}
