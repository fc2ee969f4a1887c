package kubeindex

import (
	"net/netip"
	"sync"

	"github.com/miekg/dns"
)

// The builders below exist for allocation count: a reply, its question, its
// sections and the records of a small answer share one allocation; bigger
// answers reserve their records in one slice per type. Replies to ServeDNS
// are never pooled: the writer and the cache may keep them. Replies to
// ServeInline are built in a pooled scratch: its writer keeps nothing of a
// message once WriteMsg returns (resolver.InlineHandler), and the scratch
// goes back to the pool only after that.

// scratch is the storage of one inline reply, positive or negative. The
// slices a big answer grows are kept in it, so such answers stop allocating
// once the pool is warm.
type scratch struct {
	rep reply
	neg negative

	ans, ext []dns.RR
	a        []aRR
	aaaa     []aaaaRR
	srv      []dns.SRV
	ptr      []dns.PTR
}

// scratchPool recycles scratches between inline queries.
type scratchPool struct{ p sync.Pool }

func (sp *scratchPool) get() *scratch {
	if s, ok := sp.p.Get().(*scratch); ok {
		return s
	}
	return new(scratch)
}

func (sp *scratchPool) put(s *scratch) { sp.p.Put(s) }

// aRR and aaaaRR carry the bytes their net.IP points to.
type aRR struct {
	dns.A
	ip [4]byte
}

type aaaaRR struct {
	dns.AAAA
	ip [16]byte
}

// pool hands out records from a preallocated slice.
type pool[T any] struct {
	free []T
	// spare keeps a slice grown for one reply for the next one; nil when the
	// reply is not pooled, or once this reply has taken it (records handed
	// out from it must not be handed out again).
	spare *[]T
}

func (p *pool[T]) get() *T {
	if len(p.free) == 0 {
		p.reserve(4)
	}
	x := &p.free[0]
	p.free = p.free[1:]
	return x
}

// reserve makes the next n gets cost at most one allocation together.
func (p *pool[T]) reserve(n int) {
	if len(p.free) >= n {
		return
	}
	p.free = grow(&p.spare, n)
}

// grow returns a slice of length n: the spare one when it is big enough,
// else a new one that becomes the spare. Either way the spare is taken.
func grow[T any](spare **[]T, n int) []T {
	sp := *spare
	*spare = nil
	if sp == nil {
		return make([]T, n)
	}
	if cap(*sp) < n {
		*sp = make([]T, n)
	}
	return (*sp)[:n]
}

// reply is a positive answer under construction.
type reply struct {
	msg  dns.Msg
	q    [1]dns.Question
	ans  [3]dns.RR
	ext  [2]dns.RR
	a    pool[aRR]
	aaaa pool[aaaaRR]
	srv  pool[dns.SRV]
	ptr  pool[dns.PTR]

	inA    [2]aRR
	inAAAA [2]aaaaRR
	inSRV  [2]dns.SRV
	inPTR  [1]dns.PTR

	spareAns, spareExt *[]dns.RR // as pool.spare, for the sections
}

// newReply starts the authoritative NOERROR reply to r, in s when s is not
// nil.
func newReply(r *dns.Msg, s *scratch) *reply {
	var p *reply
	if s != nil {
		p = &s.rep
		*p = reply{}
		p.spareAns, p.spareExt = &s.ans, &s.ext
		p.a.spare, p.aaaa.spare, p.srv.spare, p.ptr.spare = &s.a, &s.aaaa, &s.srv, &s.ptr
	} else {
		p = &reply{}
	}
	setReply(&p.msg, &p.q, r)
	p.msg.Answer = p.ans[:0]
	p.msg.Extra = p.ext[:0]
	p.a.free = p.inA[:]
	p.aaaa.free = p.inAAAA[:]
	p.srv.free = p.inSRV[:]
	p.ptr.free = p.inPTR[:]
	return p
}

// reserveAnswer makes room for n answer records, reserveExtra for n
// additional ones; each is called at most once per reply.
func (p *reply) reserveAnswer(n int) {
	if n > cap(p.msg.Answer) {
		p.msg.Answer = grow(&p.spareAns, n)[:0]
	}
}

func (p *reply) reserveExtra(n int) {
	if n > cap(p.msg.Extra) {
		p.msg.Extra = grow(&p.spareExt, n)[:0]
	}
}

// setReply is dns.Msg.SetReply with the question copied into q (no
// allocation) and AA set.
func setReply(m *dns.Msg, q *[1]dns.Question, r *dns.Msg) {
	m.Id = r.Id
	m.Response = true
	m.Opcode = r.Opcode
	if m.Opcode == dns.OpcodeQuery {
		m.RecursionDesired = r.RecursionDesired
		m.CheckingDisabled = r.CheckingDisabled
	}
	m.Authoritative = true
	if len(r.Question) > 0 {
		q[0] = r.Question[0]
		m.Question = q[:]
	}
}

// reserveAddrs prepares for n4 A and n6 AAAA records.
func (p *reply) reserveAddrs(n4, n6 int) {
	p.a.reserve(n4)
	p.aaaa.reserve(n6)
}

// addr returns addr as an A or AAAA record owned by name.
func (p *reply) addr(name string, ttl uint32, addr netip.Addr) dns.RR {
	if addr.Is4() {
		x := p.a.get()
		x.ip = addr.As4()
		x.Hdr = dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}
		x.A.A = x.ip[:]
		return &x.A
	}
	x := p.aaaa.get()
	x.ip = addr.As16()
	x.Hdr = dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}
	x.AAAA.AAAA = x.ip[:]
	return &x.AAAA
}

// answer appends rr to the answer section.
func (p *reply) answer(rr dns.RR) { p.msg.Answer = append(p.msg.Answer, rr) }

// extra appends rr to the additional section.
func (p *reply) extra(rr dns.RR) { p.msg.Extra = append(p.msg.Extra, rr) }

// newSRV returns an SRV record owned by name.
func (p *reply) newSRV(name string, ttl uint32, weight, port uint16, target string) dns.RR {
	x := p.srv.get()
	*x = dns.SRV{
		Hdr:    dns.RR_Header{Name: name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: ttl},
		Weight: weight, Port: port, Target: target,
	}
	return x
}

// newPTR returns a PTR record owned by name.
func (p *reply) newPTR(name string, ttl uint32, target string) dns.RR {
	x := p.ptr.get()
	*x = dns.PTR{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: ttl}, Ptr: target}
	return x
}

// srvWeight is R5: floor(100 / n), at least 1.
func srvWeight(n int) uint16 {
	if n <= 0 || n >= 100 {
		return 1
	}
	return uint16(100 / n)
}

// negative is an NXDOMAIN or NODATA reply: the question and the SOA, in one
// allocation. Most queries for the cluster zone are search-path misses, so
// this is the hottest reply.
type negative struct {
	msg dns.Msg
	q   [1]dns.Question
	ns  [1]dns.RR
	soa dns.SOA
}

// newNegative builds the negative reply to r with the SOA of zone, in sc
// when sc is not nil.
func (s *settings) newNegative(r *dns.Msg, rcode int, zone string, serial uint32, sc *scratch) *dns.Msg {
	var n *negative
	if sc != nil {
		n = &sc.neg
		*n = negative{}
	} else {
		n = &negative{}
	}
	setReply(&n.msg, &n.q, r)
	n.msg.Rcode = rcode
	s.fillSOA(&n.soa, zone, serial)
	n.ns[0] = &n.soa
	n.msg.Ns = n.ns[:]
	return &n.msg
}

// fillSOA writes the zone SOA owned by zone into x.
func (s *settings) fillSOA(x *dns.SOA, zone string, serial uint32) {
	*x = dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: s.soaTTL},
		Ns:      s.mname,
		Mbox:    s.rname,
		Serial:  serial,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  s.ttl,
	}
}

// soa returns the zone SOA owned by zone as a fresh record.
func (s *settings) soa(zone string, serial uint32) *dns.SOA {
	x := new(dns.SOA)
	s.fillSOA(x, zone, serial)
	return x
}
