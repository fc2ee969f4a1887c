package forward

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// ednsSize is the UDP payload size we advertise upstream (DNS flag day 2020).
const ednsSize = 1232

// errTruncated reports a matching UDP reply with TC set (or too big for the
// read buffer): the caller retries over TCP.
var errTruncated = errors.New("truncated reply")

// errPack reports a query that cannot be encoded (a name too long): no
// upstream is to blame.
var errPack = errors.New("cannot pack query")

// aLongTimeAgo is a deadline in the past: setting it wakes a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// query is what we send upstream for one client query: the client's
// question and header flags, our own EDNS0 record. It is packed by hand into
// the socket's buffer, so nothing is allocated and nothing shared is mutated.
type query struct {
	name   string // FQDN as the client spelled it
	qtype  uint16
	qclass uint16
	bits   uint16 // opcode, RD, AD, CD of the client's query
	do     bool   // the client's DNSSEC OK bit
}

const (
	bitRD = 1 << 8
	bitAD = 1 << 5
	bitCD = 1 << 4
)

func newQuery(r *dns.Msg) query {
	q := r.Question[0]
	bits := uint16(r.Opcode&0xF) << 11
	if r.RecursionDesired {
		bits |= bitRD
	}
	if r.AuthenticatedData {
		bits |= bitAD
	}
	if r.CheckingDisabled {
		bits |= bitCD
	}
	do := false
	if o := r.IsEdns0(); o != nil {
		do = o.Do()
	}
	return query{name: dns.Fqdn(q.Name), qtype: q.Qtype, qclass: q.Qclass, bits: bits, do: do}
}

// pack writes the query with id into b and returns its length and the
// offset where the question ends.
func (q *query) pack(b []byte, id uint16) (n, qend int, err error) {
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], q.bits)
	binary.BigEndian.PutUint16(b[4:], 1)  // QDCOUNT
	binary.BigEndian.PutUint32(b[6:], 0)  // ANCOUNT, NSCOUNT
	binary.BigEndian.PutUint16(b[10:], 1) // ARCOUNT: our OPT
	off, err := dns.PackDomainName(q.name, b, 12, nil, false)
	if err != nil {
		return 0, 0, fmt.Errorf("%w %s: %w", errPack, q.name, err)
	}
	if off+4+11 > len(b) {
		return 0, 0, fmt.Errorf("%w %s: %w", errPack, q.name, dns.ErrBuf)
	}
	binary.BigEndian.PutUint16(b[off:], q.qtype)
	binary.BigEndian.PutUint16(b[off+2:], q.qclass)
	qend = off + 4
	o := b[qend : qend+11]
	o[0] = 0 // root owner
	binary.BigEndian.PutUint16(o[1:], dns.TypeOPT)
	binary.BigEndian.PutUint16(o[3:], ednsSize)
	binary.BigEndian.PutUint32(o[5:], 0) // extended rcode, version, flags
	if q.do {
		o[7] = 0x80
	}
	binary.BigEndian.PutUint16(o[9:], 0) // RDLENGTH
	return qend + 11, qend, nil
}

// matches reports whether in answers the query out: same ID, QR set, exactly
// one question equal to ours (name ASCII case-insensitive, type and class
// exact). Our question name is never compressed, so a byte comparison is
// exact; label lengths are below 64 and thus untouched by case folding.
func matches(in, out []byte, qend int) bool {
	if len(in) < qend || in[0] != out[0] || in[1] != out[1] || in[2]&0x80 == 0 || in[4] != 0 || in[5] != 1 {
		return false
	}
	for i := 12; i < qend-4; i++ {
		if lower(in[i]) != lower(out[i]) {
			return false
		}
	}
	return in[qend-4] == out[qend-4] && in[qend-3] == out[qend-3] && in[qend-2] == out[qend-2] && in[qend-1] == out[qend-1]
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// exchange sends q to u over one transport and returns the first matching
// reply. On errTruncated the reply is not returned. A pooled TCP socket the
// upstream closed while idle is replaced once without counting a failure.
func (f *Forward) exchange(ctx context.Context, u *upstream, q *query, tcp bool, deadline time.Time) (*dns.Msg, error) {
	for retry := 0; ; retry++ {
		c, pooled, err := f.acquire(ctx, u, tcp, deadline)
		if err != nil {
			return nil, err
		}
		m, reuse, err := f.roundTrip(ctx, u, c, q, deadline)
		if reuse {
			u.put(c, f.now(), f.cfg.Expire, f.maxIdle(tcp))
		} else {
			_ = c.nc.Close()
		}
		if err != nil && tcp && pooled && retry == 0 && closedByPeer(err) {
			continue
		}
		return m, err
	}
}

// maxIdle bounds the free list of a transport per upstream.
func (f *Forward) maxIdle(tcp bool) int {
	if tcp {
		return maxIdleTCP
	}
	return f.cfg.MaxConcurrent
}

// acquire takes a pooled socket or dials a new one.
func (f *Forward) acquire(ctx context.Context, u *upstream, tcp bool, deadline time.Time) (c *conn, pooled bool, err error) {
	c, stale := u.take(tcp, f.now(), f.cfg.Expire)
	if c != nil {
		closeAll(stale)
		return c, true, nil
	}
	defer closeAll(stale) // after the dial: the new socket cannot reuse their ports
	var nc net.Conn
	if tcp {
		d := net.Dialer{Deadline: deadline}
		nc, err = d.DialContext(ctx, "tcp", u.label)
	} else {
		nc, err = net.DialUDP("udp", nil, u.udpAddr)
	}
	if err != nil {
		return nil, false, fmt.Errorf("dial %s: %w", u.label, err)
	}
	c = &conn{nc: nc, tcp: tcp, created: f.now()}
	if tcp {
		c.in = make([]byte, 512)
	}
	return c, false, nil
}

// roundTrip writes q with a fresh random ID on c and reads until a matching
// reply arrives or the deadline passes; mismatched packets are counted and
// dropped. reuse tells whether c is in a known state to be pooled again.
func (f *Forward) roundTrip(ctx context.Context, u *upstream, c *conn, q *query, deadline time.Time) (m *dns.Msg, reuse bool, err error) {
	out := c.out[2:]
	n, qend, err := q.pack(out, uint16(rand.Uint32()))
	if err != nil {
		return nil, true, err
	}
	out = out[:n]
	if err := c.nc.SetDeadline(deadline); err != nil {
		return nil, false, fmt.Errorf("set deadline %s: %w", u.label, err)
	}
	if watchDone(ctx) {
		// a read cannot sit in a select; waking it with a past deadline is
		// the equivalent of <-ctx.Done()
		stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(aLongTimeAgo) })
		defer func() {
			if !stop() {
				reuse = false // the deadline was poisoned
			}
		}()
	}
	wire := out
	if c.tcp {
		binary.BigEndian.PutUint16(c.out[:2], uint16(n))
		wire = c.out[:2+n]
	}
	if _, err := c.nc.Write(wire); err != nil {
		return nil, false, fmt.Errorf("write to %s: %w", u.label, err)
	}
	if !c.tcp {
		// Idle UDP sockets hold no read buffer: the pool keeps as many
		// sockets as queries were in flight at the peak.
		bp := f.udpBufs.get()
		c.in = *bp
		defer func() {
			c.in = nil
			f.udpBufs.put(bp)
		}()
	}
	for {
		in, err := c.read()
		if err != nil {
			return nil, false, fmt.Errorf("read from %s: %w", u.label, err)
		}
		if !matches(in, out, qend) {
			u.mismatched.Inc()
			continue
		}
		if !c.tcp && (len(in) == len(c.in) || in[2]&0x02 != 0) {
			return nil, true, errTruncated
		}
		m := new(dns.Msg)
		if err := m.Unpack(in); err != nil {
			u.mismatched.Inc() // a matching header on a broken body: keep waiting for a good one
			continue
		}
		return m, true, nil
	}
}

// deadlineOnly is implemented by contexts that, while a stage holds them,
// end only when their deadline passes (the front end's query context).
type deadlineOnly interface{ DeadlineOnly() bool }

// watchDone reports whether a blocked read must also be woken by ctx.Done.
// The socket deadline already covers ctx's deadline, so a context that can
// end no earlier needs no watcher: context.AfterFunc would cost a goroutine
// and a timer per upstream query.
func watchDone(ctx context.Context) bool {
	if d, ok := ctx.(deadlineOnly); ok && d.DeadlineOnly() {
		return false
	}
	return ctx.Done() != nil
}

// read returns the next message on c; the slice is valid until the next read.
func (c *conn) read() ([]byte, error) {
	if !c.tcp {
		n, err := c.nc.Read(c.in)
		return c.in[:n], err
	}
	if _, err := io.ReadFull(c.nc, c.in[:2]); err != nil {
		return nil, err
	}
	l := int(binary.BigEndian.Uint16(c.in))
	if l > cap(c.in) {
		c.in = make([]byte, l)
	}
	if _, err := io.ReadFull(c.nc, c.in[:l]); err != nil {
		return nil, err
	}
	return c.in[:l], nil
}

// closedByPeer tells errors of a TCP socket the upstream closed while it sat
// in the pool.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
