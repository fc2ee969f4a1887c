package frontend

import (
	"encoding/binary"
	"fmt"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
)

const (
	headerLen = 12
	// ednsSize is the UDP payload size we advertise (DNS flag day 2020).
	ednsSize = 1232
	// anyTTL is the TTL of the RFC 8482 HINFO answer (as CoreDNS's any).
	anyTTL = 8482
	// maxUDPReply caps a UDP reply whatever buffer the client claims: a
	// spoofed 60-byte query asking for 65535 would otherwise reflect a
	// thousand times its size (and no IPv4 datagram holds more than 65507
	// bytes: the send would fail). Bigger answers get TC and go over TCP.
	maxUDPReply = 4096
)

// writeLocked shapes m for the client, packs it into a pooled buffer and
// sends it. A message that does not pack (a stage bug) is replaced by
// SERVFAIL. q.mu is held.
func (q *query) writeLocked(m *dns.Msg) error {
	bp := q.f.bufs.get()
	defer q.f.bufs.put(bp)
	frame, rcode, perr := q.pack(m, *bp)
	if perr != nil {
		q.f.log.Error("frontend: reply does not pack; answering SERVFAIL", "err", perr, "name", q.qname())
		fail := dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeServerFailure}}
		var err error
		if frame, rcode, err = q.pack(&fail, *bp); err != nil {
			return fmt.Errorf("pack SERVFAIL: %w", err)
		}
		perr = fmt.Errorf("pack reply: %w", perr)
	}
	if !q.written {
		q.written, q.rcode = true, rcode
	}
	if err := q.tr.send(q, frame); err != nil {
		return fmt.Errorf("send reply to %s: %w", q.raddr, err)
	}
	return perr
}

// pack turns m into wire bytes in buf[2:] without changing m, which may be
// shared (a cached reply). It returns the frame (buf[:2] free for a TCP
// length) and the rcode packed.
func (q *query) pack(m *dns.Msg, buf []byte) (frame []byte, rcode int, err error) {
	r := &q.req
	o := &q.out
	*o = *m // shallow: sections are resliced below, never written through
	defer func() { *o = dns.Msg{} }()
	o.Id = r.Id
	o.Response = true
	o.Opcode = r.Opcode
	o.RecursionAvailable = true
	if len(o.Question) == 0 && len(r.Question) == 1 {
		o.Question = r.Question
	}
	o.Extra = q.shapeExtra(m.Extra)
	o.Truncate(q.replySize())
	b, err := o.PackBuffer(buf[2:])
	if err != nil {
		return nil, o.Rcode, err
	}
	if len(b) > 0 && &b[0] == &buf[2] {
		return buf[:len(b)+2], o.Rcode, nil
	}
	frame = make([]byte, len(b)+2) // did not fit the pooled buffer
	copy(frame[2:], b)
	return frame, o.Rcode, nil
}

// replySize is the largest reply the client accepts (resolver.ReplySize),
// over UDP at most maxUDPReply.
func (q *query) replySize() int {
	size := resolver.ReplySize(q, &q.req)
	if q.proto == protoUDP {
		size = min(size, maxUDPReply)
	}
	return size
}

// optLen is the length of our OPT record: root owner, type, class, TTL and
// an empty RDATA.
const optLen = 11

// WriteWire sends the packed reply b, which holds one question and no OPT
// record, as it is apart from what the front end owns: the client's ID, QR,
// the opcode and RA, and for a client that sent EDNS our OPT record (payload
// size ednsSize, the client's DO bit) appended. A reply that does not fit the
// client's buffer that way is unpacked and goes through WriteMsg, which
// truncates it. When b is packed uncompressed the bytes sent are those
// WriteMsg sends for the same message. b is not retained.
func (q *query) WriteWire(b []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.done {
		return ErrLateWrite
	}
	if q.written && q.proto == protoUDP {
		return nil
	}
	ol := 0
	if q.edns != nil {
		ol = optLen
	}
	if len(b) < headerLen || binary.BigEndian.Uint16(b[4:]) != 1 || len(b)+ol > q.replySize() {
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			return fmt.Errorf("frontend: write: %w", err)
		}
		return q.writeLocked(m)
	}
	bp := q.f.bufs.get()
	defer q.f.bufs.put(bp)
	frame := *bp
	if n := 2 + len(b) + ol; n <= len(frame) {
		frame = frame[:n]
	} else {
		frame = make([]byte, n)
	}
	h := frame[2:]
	copy(h, b)
	binary.BigEndian.PutUint16(h, q.req.Id)
	h[2] = 0x80 | byte(q.req.Opcode&0xf)<<3 | h[2]&0x07 // QR, opcode; AA, TC, RD kept
	h[3] |= 0x80                                        // RA
	if ol > 0 {
		binary.BigEndian.PutUint16(h[10:], binary.BigEndian.Uint16(h[10:])+1)
		o := h[len(b):]
		o[0] = 0 // root owner
		binary.BigEndian.PutUint16(o[1:], dns.TypeOPT)
		binary.BigEndian.PutUint16(o[3:], ednsSize)
		binary.BigEndian.PutUint32(o[5:], 0) // extended rcode, version, flags
		if q.edns.Do() {
			o[7] = 0x80
		}
		binary.BigEndian.PutUint16(o[9:], 0) // RDLENGTH
	}
	if !q.written {
		q.written, q.rcode = true, int(h[3]&0xf)
	}
	if err := q.tr.send(q, frame); err != nil {
		return fmt.Errorf("send reply to %s: %w", q.raddr, err)
	}
	return nil
}

// shapeExtra returns extra without any OPT record, plus ours when the client
// sent EDNS: payload size ednsSize and the client's DO bit. The result never
// shares a backing array that Truncate could modify with extra.
func (q *query) shapeExtra(extra []dns.RR) []dns.RR {
	hasOpt := false
	for _, rr := range extra {
		if rr != nil && rr.Header().Rrtype == dns.TypeOPT {
			hasOpt = true
			break
		}
	}
	if !hasOpt && q.edns == nil {
		return extra
	}
	n := len(extra) + 1
	var out []dns.RR
	if n <= len(q.outX) {
		out = q.outX[:0]
	} else {
		out = make([]dns.RR, 0, n)
	}
	for _, rr := range extra {
		if rr != nil && rr.Header().Rrtype != dns.TypeOPT {
			out = append(out, rr)
		}
	}
	if q.edns != nil {
		q.opt = dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: ednsSize}}
		if q.edns.Do() {
			q.opt.SetDo()
		}
		out = append(out, &q.opt)
	}
	return out
}

// reply writes the empty reply with rcode.
func (q *query) reply(rcode int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.replyLocked(rcode)
}

func (q *query) replyLocked(rcode int) {
	m := dns.Msg{MsgHdr: dns.MsgHdr{
		Rcode:            rcode,
		RecursionDesired: q.req.RecursionDesired,
		CheckingDisabled: q.req.CheckingDisabled,
	}}
	if err := q.writeLocked(&m); err != nil {
		q.f.log.Debug("frontend: reply", "err", err)
	}
}

// replyANY answers ANY per RFC 8482 with one synthesized HINFO, without the
// chain: ANY is an amplification favourite and no client needs it.
func (q *query) replyANY() {
	m := dns.Msg{MsgHdr: dns.MsgHdr{
		RecursionDesired: q.req.RecursionDesired,
		CheckingDisabled: q.req.CheckingDisabled,
	}}
	m.Answer = []dns.RR{&dns.HINFO{
		Hdr: dns.RR_Header{Name: q.req.Question[0].Name, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: anyTTL},
		Cpu: "RFC8482",
	}}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.writeLocked(&m); err != nil {
		q.f.log.Debug("frontend: reply", "err", err)
	}
}

// formErrHeader answers a packet whose header parsed but whose body did not
// with a bare header: the client's ID and opcode, RD echoed, FORMERR.
func (q *query) formErrHeader(pkt []byte) {
	bp := q.f.bufs.get()
	defer q.f.bufs.put(bp)
	frame := (*bp)[:2+headerLen]
	clear(frame)
	h := frame[2:]
	h[0], h[1] = pkt[0], pkt[1]
	h[2] = 0x80 | pkt[2]&0x79 // QR, opcode, RD
	h[3] = dns.RcodeFormatError
	q.mu.Lock()
	defer q.mu.Unlock()
	q.written, q.rcode = true, dns.RcodeFormatError
	if err := q.tr.send(q, frame); err != nil {
		q.f.log.Debug("frontend: reply", "err", err)
	}
}

func (q *query) qname() string {
	if len(q.req.Question) > 0 {
		return q.req.Question[0].Name
	}
	return ""
}
