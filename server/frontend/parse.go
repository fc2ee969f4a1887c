package frontend

import (
	"encoding/binary"

	"github.com/miekg/dns"
)

// parse fills q.req from pkt (at least a header long) and reports whether it
// unpacked. The common query (one plain question, at most an OPT without
// options) is decoded by hand into q's own storage, costing only the name
// string; anything else goes through dns.Msg.Unpack. Both give the same
// Msg (FuzzParse checks it).
func (q *query) parse(pkt []byte) bool {
	if !q.parseFast(pkt) {
		q.req = dns.Msg{}
		if err := q.req.Unpack(pkt); err != nil {
			return false
		}
	}
	q.edns, q.nOpt = nil, 0
	for _, rr := range q.req.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			q.edns = o
			q.nOpt++
		}
	}
	return true
}

// plainLabelByte reports bytes that miekg/dns prints unescaped; a name of
// only these needs no escaping to become its presentation form.
var plainLabelByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['_'], t['*'] = true, true, true
	return t
}()

func (q *query) parseFast(b []byte) bool {
	be := binary.BigEndian
	if len(b) < headerLen+5 || be.Uint16(b[4:]) != 1 || be.Uint16(b[6:]) != 0 ||
		be.Uint16(b[8:]) != 0 || be.Uint16(b[10:]) > 1 {
		return false
	}
	var name [255]byte
	n, off := 0, headerLen
	for {
		if off >= len(b) {
			return false
		}
		l := int(b[off])
		off++
		if l == 0 {
			break
		}
		// l > 63 is a pointer or reserved; n+l+1 >= 255 is too long
		if l > 63 || off+l > len(b) || n+l+1 >= 255 {
			return false
		}
		for _, c := range b[off : off+l] {
			if !plainLabelByte[c] {
				return false
			}
		}
		n += copy(name[n:], b[off:off+l])
		name[n] = '.'
		n++
		off += l
	}
	if off+4 > len(b) {
		return false
	}
	qtype, qclass := be.Uint16(b[off:]), be.Uint16(b[off+2:])
	off += 4
	arcount := be.Uint16(b[10:])
	var opt dns.RR_Header
	if arcount == 1 {
		// root owner, type OPT, class, ttl, rdlength 0
		if off+11 != len(b) || b[off] != 0 || be.Uint16(b[off+1:]) != dns.TypeOPT || be.Uint16(b[off+9:]) != 0 {
			return false
		}
		opt = dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: be.Uint16(b[off+3:]), Ttl: be.Uint32(b[off+5:])}
	} else if off != len(b) {
		return false
	}

	s := "."
	if n > 0 {
		s = string(name[:n])
	}
	bits := be.Uint16(b[2:])
	q.req = dns.Msg{MsgHdr: dns.MsgHdr{
		Id:                 be.Uint16(b),
		Response:           bits&(1<<15) != 0,
		Opcode:             int(bits>>11) & 0xF,
		Authoritative:      bits&(1<<10) != 0,
		Truncated:          bits&(1<<9) != 0,
		RecursionDesired:   bits&(1<<8) != 0,
		RecursionAvailable: bits&(1<<7) != 0,
		Zero:               bits&(1<<6) != 0,
		AuthenticatedData:  bits&(1<<5) != 0,
		CheckingDisabled:   bits&(1<<4) != 0,
		Rcode:              int(bits & 0xF),
	}}
	q.reqQ[0] = dns.Question{Name: s, Qtype: qtype, Qclass: qclass}
	q.req.Question = q.reqQ[:]
	if arcount == 1 {
		q.reqOpt = dns.OPT{Hdr: opt}
		q.reqX[0] = &q.reqOpt
		q.req.Extra = q.reqX[:]
		q.req.Rcode |= q.reqOpt.ExtendedRcode()
	}
	return true
}
