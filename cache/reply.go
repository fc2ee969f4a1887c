package cache

import (
	"strings"

	"github.com/miekg/dns"
)

// smallReply is how many records a reply may hold and still have its record
// slots in the same allocation as the message.
const smallReply = 4

// hitReply is a hit's message, its question and, for small replies, its
// record slots in one allocation: the hit path's budget is this plus one
// allocation per record.
type hitReply struct {
	msg dns.Msg
	q   [1]dns.Question
	rrs [smallReply]dns.RR
}

// reply builds the message answering r from the stored message s, with every
// TTL set to ttl seconds. s is only read: records are copied before their
// header is changed.
func reply(r, s *dns.Msg, ttl uint32) *dns.Msg {
	h := new(hitReply)
	m := &h.msg
	m.MsgHdr = s.MsgHdr
	m.Id = r.Id
	m.Opcode = r.Opcode
	m.RecursionDesired = r.RecursionDesired
	m.CheckingDisabled = r.CheckingDisabled
	m.Authoritative = false // a cached answer is not authoritative
	m.Truncated = false
	// RFC 6840 section 5.8: AD only for clients that asked with DO or AD.
	m.AuthenticatedData = s.AuthenticatedData && (r.AuthenticatedData || doBit(r))
	m.Compress = s.Compress
	h.q[0] = r.Question[0] // the client's spelling
	m.Question = h.q[:]

	na, nn, ne := len(s.Answer), len(s.Ns), len(s.Extra)
	var rrs []dns.RR
	if n := na + nn + ne; n <= smallReply {
		rrs = h.rrs[:n]
	} else {
		rrs = make([]dns.RR, n)
	}
	qname := r.Question[0].Name
	copyRRs(rrs[:na], s.Answer, ttl, qname)
	copyRRs(rrs[na:na+nn], s.Ns, ttl, "")
	copyRRs(rrs[na+nn:], s.Extra, ttl, "")
	// Full slice expressions: an append by a later stage must not write into
	// the neighbouring section.
	m.Answer = section(rrs[:na:na])
	m.Ns = section(rrs[na : na+nn : na+nn])
	m.Extra = section(rrs[na+nn:])
	return m
}

func section(rrs []dns.RR) []dns.RR {
	if len(rrs) == 0 {
		return nil
	}
	return rrs
}

// copyRRs copies src into dst with TTL ttl. Owner names equal to qname
// (ignoring case) take qname's spelling, so the answer echoes the client's.
func copyRRs(dst, src []dns.RR, ttl uint32, qname string) {
	for i, rr := range src {
		c := copyRR(rr)
		h := c.Header()
		h.Ttl = ttl
		if qname != "" && h.Name != qname && strings.EqualFold(h.Name, qname) {
			h.Name = qname
		}
		dst[i] = c
	}
}

// copyRR returns a copy of rr with its own header. For address records the
// address bytes are shared with the stored record: nothing writes to them,
// and copying them would double the allocations of the commonest hit.
func copyRR(rr dns.RR) dns.RR {
	switch v := rr.(type) {
	case *dns.A:
		c := *v
		return &c
	case *dns.AAAA:
		c := *v
		return &c
	}
	return dns.Copy(rr)
}

func doBit(r *dns.Msg) bool {
	if o := r.IsEdns0(); o != nil {
		return o.Do()
	}
	return false
}
