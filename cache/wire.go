package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Entries hold the reply in wire form, packed once when stored: a hit copies
// the bytes and patches the few fields that differ per client (ID, flags,
// the spelling of the question name, TTLs) instead of building and packing a
// message. The form is packed uncompressed, which is what the front end sends
// for any reply that fits the client's buffer uncompressed, so a hit written
// as bytes is the reply a message would have given, byte for byte.

// wireWriter is implemented by the front end's ResponseWriter: WriteWire
// sends a packed reply without an OPT record after setting what the front
// end owns (ID, QR, opcode, RA, the client's OPT record), or hands it to
// WriteMsg when it does not fit the client's buffer as it is.
type wireWriter interface {
	WriteWire(b []byte) error
}

var errWire = errors.New("malformed stored reply")

// storeScratch is the size of pooled buffers; a larger reply allocates.
const storeScratch = 4096

// bufPool recycles buffers of storeScratch bytes.
type bufPool struct{ p sync.Pool }

func (b *bufPool) get(n int) *[]byte {
	if n <= storeScratch {
		if v, ok := b.p.Get().(*[]byte); ok {
			return v
		}
		s := make([]byte, storeScratch)
		return &s
	}
	s := make([]byte, n)
	return &s
}

func (b *bufPool) put(p *[]byte) {
	if cap(*p) == storeScratch {
		*p = (*p)[:storeScratch]
		b.p.Put(p)
	}
}

// wireForm is a reply packed for storage: the message (ID 0, uncompressed,
// no OPT) followed by big-endian uint16 offsets into it: nttl TTL fields,
// then nname answer owner names equal to the question name but for case.
type wireForm struct {
	buf   []byte // never written after packReply returns
	n     uint16 // message length
	nttl  uint16
	nname uint16
}

// packReply returns the stored form of m; m is not changed or retained.
func (c *Cache) packReply(m *dns.Msg) (wireForm, error) {
	s := *m // shallow: only the header fields and the Extra slice header differ
	s.Id = 0
	s.Compress = false
	var extra [8]dns.RR
	s.Extra = extra[:0]
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			s.Extra = append(s.Extra, rr)
		}
	}
	bp := c.bufs.get(storeScratch)
	defer c.bufs.put(bp)
	b, err := s.PackBuffer(*bp)
	if err != nil {
		return wireForm{}, fmt.Errorf("pack: %w", err)
	}
	if len(b) > 0xffff {
		return wireForm{}, fmt.Errorf("%w: %d bytes uncompressed", errWire, len(b))
	}
	var ttlBuf, nameBuf [32]uint16
	ttls, names, err := walk(b, ttlBuf[:0], nameBuf[:0])
	if err != nil {
		return wireForm{}, err
	}
	w := wireForm{n: uint16(len(b)), nttl: uint16(len(ttls)), nname: uint16(len(names))}
	w.buf = make([]byte, len(b), len(b)+2*(len(ttls)+len(names)))
	copy(w.buf, b)
	for _, o := range ttls {
		w.buf = binary.BigEndian.AppendUint16(w.buf, o)
	}
	for _, o := range names {
		w.buf = binary.BigEndian.AppendUint16(w.buf, o)
	}
	return w, nil
}

// walk checks that b is one uncompressed message with one question and
// appends the offsets of its TTL fields to ttls and of the answer owner
// names equal to the question name (ASCII case ignored) to names.
func walk(b []byte, ttls, names []uint16) ([]uint16, []uint16, error) {
	if len(b) < 12 || binary.BigEndian.Uint16(b[4:]) != 1 {
		return nil, nil, errWire
	}
	qend := skipName(b, 12)
	if qend < 0 || qend+4 > len(b) {
		return nil, nil, errWire
	}
	qname := b[12:qend]
	an := int(binary.BigEndian.Uint16(b[6:]))
	rrs := an + int(binary.BigEndian.Uint16(b[8:])) + int(binary.BigEndian.Uint16(b[10:]))
	off := qend + 4
	for i := range rrs {
		end := skipName(b, off)
		if end < 0 || end+10 > len(b) {
			return nil, nil, errWire
		}
		if i < an && end-off == len(qname) && equalFold(b[off:end], qname) {
			names = append(names, uint16(off))
		}
		ttls = append(ttls, uint16(end+4))
		off = end + 10 + int(binary.BigEndian.Uint16(b[end+8:]))
	}
	if off != len(b) {
		return nil, nil, errWire
	}
	return ttls, names, nil
}

// skipName returns the offset just past the uncompressed name at off, or -1.
func skipName(b []byte, off int) int {
	for off < len(b) {
		l := int(b[off])
		if l == 0 {
			return off + 1
		}
		if l&0xc0 != 0 {
			return -1 // a pointer: never in what we pack
		}
		off += 1 + l
	}
	return -1
}

// equalFold compares wire names ignoring ASCII case; label lengths are
// below 64 and so never fold.
func equalFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hitReply writes into dst (at least w.n bytes) the reply to r from w, every
// TTL set to ttl, and returns it. It is what the stored message would give
// with the client's ID, RD and CD, AA and TC clear, AD only for clients that
// asked with DO or AD (RFC 6840 section 5.8), and the question and answer
// owner names equal to it spelled as the client did.
func (w *wireForm) hitReply(dst []byte, r *dns.Msg, ttl uint32) []byte {
	n := int(w.n)
	b := dst[:n]
	copy(b, w.buf[:n])
	binary.BigEndian.PutUint16(b, r.Id)
	flags := b[2]&0x80 | byte(r.Opcode&0xf)<<3 // QR kept; AA and TC cleared
	if r.RecursionDesired {
		flags |= 0x01
	}
	b[2] = flags
	flags = b[3] & 0xcf // RA, Z and rcode kept
	if b[3]&0x20 != 0 && (r.AuthenticatedData || doBit(r)) {
		flags |= 0x20
	}
	if r.CheckingDisabled {
		flags |= 0x10
	}
	b[3] = flags
	offs := w.buf[n:]
	for i := range int(w.nttl) {
		binary.BigEndian.PutUint32(b[binary.BigEndian.Uint16(offs[2*i:]):], ttl)
	}
	offs = offs[2*int(w.nttl):]
	var spell [256]byte
	if cw := clientName(spell[:], r.Question[0].Name); cw != nil {
		qend := 12 + len(cw)
		if qend <= n && equalFold(cw, b[12:qend]) {
			copy(b[12:], cw)
			for i := range int(w.nname) {
				copy(b[binary.BigEndian.Uint16(offs[2*i:]):], cw)
			}
		}
	}
	return b
}

// clientName returns the wire form of the FQDN name in dst (256 bytes), or
// nil when name is not a valid FQDN (the stored spelling is kept then).
func clientName(dst []byte, name string) []byte {
	if name == "." {
		return append(dst[:0], 0)
	}
	if strings.IndexByte(name, '\\') >= 0 || len(name) > 254 {
		n, err := dns.PackDomainName(name, dst[:256], 0, nil, false)
		if err != nil {
			return nil
		}
		return dst[:n]
	}
	dst = dst[:0]
	for len(name) > 0 {
		i := strings.IndexByte(name, '.')
		if i <= 0 || i > 63 {
			return nil
		}
		dst = append(dst, byte(i))
		dst = append(dst, name[:i]...)
		name = name[i+1:]
	}
	return append(dst, 0)
}

func doBit(r *dns.Msg) bool {
	if o := r.IsEdns0(); o != nil {
		return o.Do()
	}
	return false
}
