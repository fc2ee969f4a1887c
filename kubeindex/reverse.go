package kubeindex

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

const (
	v4Arpa = "in-addr.arpa."
	v6Arpa = "ip6.arpa."
)

// parseReverseZone reads a reverseZones entry: a zone name under
// in-addr.arpa. or ip6.arpa., or a CIDR whose zone is the prefix rounded
// down to an octet (IPv4) or nibble (IPv6) boundary.
func parseReverseZone(z string) (reverseZone, error) {
	if strings.Contains(z, "/") {
		p, err := netip.ParsePrefix(z)
		if err != nil {
			return reverseZone{}, fmt.Errorf("not a CIDR: %w", err)
		}
		p = p.Masked()
		step := 4
		if p.Addr().Is4() {
			step = 8
		}
		zp := netip.PrefixFrom(p.Addr(), p.Bits()/step*step)
		return reverseZone{name: reverseZoneName(zp), prefix: p}, nil
	}
	name := strings.ToLower(dns.Fqdn(z))
	var labels []string
	v4 := false
	switch {
	case inZone(name, v4Arpa):
		v4 = true
		labels = splitLabels(strings.TrimSuffix(name, v4Arpa))
	case inZone(name, v6Arpa):
		labels = splitLabels(strings.TrimSuffix(name, v6Arpa))
	default:
		return reverseZone{}, errors.New("must be a CIDR or a zone under in-addr.arpa or ip6.arpa")
	}
	var b [16]byte
	if v4 {
		if len(labels) > 4 {
			return reverseZone{}, errors.New("more than 4 octets")
		}
		for i, l := range labels {
			o, ok := parseOctet(l)
			if !ok {
				return reverseZone{}, fmt.Errorf("label %q is not an octet", l)
			}
			b[len(labels)-1-i] = o
		}
		a := netip.AddrFrom4([4]byte(b[:4]))
		return reverseZone{name: name, prefix: netip.PrefixFrom(a, 8*len(labels))}, nil
	}
	if len(labels) > 32 {
		return reverseZone{}, errors.New("more than 32 nibbles")
	}
	for i, l := range labels {
		v, ok := nibble(l)
		if !ok {
			return reverseZone{}, fmt.Errorf("label %q is not a hex nibble", l)
		}
		pos := len(labels) - 1 - i // nibble index from the left
		b[pos/2] |= v << (4 * (1 - pos%2))
	}
	return reverseZone{name: name, prefix: netip.PrefixFrom(netip.AddrFrom16(b), 4*len(labels))}, nil
}

// splitLabels splits a relative name ending in '.' ("" for none).
func splitLabels(rel string) []string {
	if rel == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(rel, "."), ".")
}

// reverseZoneName is the reverse zone of a prefix on an octet or nibble
// boundary.
func reverseZoneName(p netip.Prefix) string {
	var b strings.Builder
	if p.Addr().Is4() {
		a := p.Addr().As4()
		for i := p.Bits()/8 - 1; i >= 0; i-- {
			fmt.Fprintf(&b, "%d.", a[i])
		}
		return b.String() + v4Arpa
	}
	a := p.Addr().As16()
	for i := p.Bits()/4 - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "%x.", a[i/2]>>(4*(1-i%2))&0xf)
	}
	return b.String() + v6Arpa
}

// parseReverse reads a full reverse name: 4 octets under in-addr.arpa. or 32
// nibbles under ip6.arpa. Anything else is no address.
func parseReverse(name string) (netip.Addr, bool) {
	if rel, ok := strings.CutSuffix(name, "."+v4Arpa); ok {
		var b [4]byte
		for i := 3; i >= 0; i-- {
			l := rel
			if i > 0 {
				dot := strings.IndexByte(rel, '.')
				if dot < 0 {
					return netip.Addr{}, false
				}
				l, rel = rel[:dot], rel[dot+1:]
			}
			o, ok := parseOctet(l)
			if !ok {
				return netip.Addr{}, false
			}
			b[i] = o
		}
		return netip.AddrFrom4(b), true
	}
	if rel, ok := strings.CutSuffix(name, "."+v6Arpa); ok {
		if len(rel) != 63 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i := range 32 {
			if i > 0 && rel[2*i-1] != '.' {
				return netip.Addr{}, false
			}
			v, ok := nibble(rel[2*i : 2*i+1])
			if !ok {
				return netip.Addr{}, false
			}
			pos := 31 - i
			b[pos/2] |= v << (4 * (1 - pos%2))
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// parseOctet parses a decimal octet without leading zeros.
func parseOctet(l string) (byte, bool) {
	if len(l) == 0 || len(l) > 3 || len(l) > 1 && l[0] == '0' {
		return 0, false
	}
	v := 0
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return 0, false
		}
		v = v*10 + int(l[i]-'0')
	}
	return byte(v), v <= 255
}

// nibble parses one lower-case hex digit.
func nibble(l string) (byte, bool) {
	if len(l) != 1 {
		return 0, false
	}
	switch c := l[0]; {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// reverseName finds the configured reverse zone answering name: the longest
// zone holding name whose prefix holds its address.
func (s *settings) reverseName(name string) (*reverseZone, netip.Addr, bool) {
	if len(s.reverse) == 0 || !strings.HasSuffix(name, ".arpa.") {
		return nil, netip.Addr{}, false
	}
	addr, ok := parseReverse(name)
	if !ok {
		return nil, netip.Addr{}, false
	}
	var best *reverseZone
	for i := range s.reverse {
		rz := &s.reverse[i]
		if inZone(name, rz.name) && rz.prefix.Contains(addr) && (best == nil || len(rz.name) > len(best.name)) {
			best = rz
		}
	}
	return best, addr, best != nil
}

// reverse answers a reverse name of the index (R9, R10): a PTR per owner of
// the address, NODATA for other types. Addresses the index does not know are
// declined, so next answers them and upstream PTRs keep working.
func (h *Handler) reverse(r *dns.Msg, addr netip.Addr, s *scratch) (*dns.Msg, int) {
	owners := h.e.index.Reverse(addr)
	if len(owners) == 0 {
		return nil, declined
	}
	if r.Question[0].Qtype != dns.TypePTR {
		return nil, nodata
	}
	zone := h.e.set.zone
	var buf [maxDashed]byte
	size := 0
	for i := range owners {
		size += ptrTargetLen(&owners[i], addr, zone, buf[:0])
	}
	var b strings.Builder
	b.Grow(size)
	for i := range owners {
		o := &owners[i]
		if o.Endpoint {
			if o.Label != "" {
				b.WriteString(o.Label)
			} else {
				b.Write(appendDashed(buf[:0], addr))
			}
			b.WriteByte('.')
		}
		b.WriteString(o.Service)
		b.WriteByte('.')
		b.WriteString(o.Namespace)
		b.WriteString(".svc.")
		b.WriteString(zone)
	}
	all, off := b.String(), 0
	p := newReply(r, s)
	p.ptr.reserve(len(owners))
	p.reserveAnswer(len(owners))
	for i := range owners {
		l := ptrTargetLen(&owners[i], addr, zone, buf[:0])
		p.answer(p.newPTR(r.Question[0].Name, h.e.set.ttl, all[off:off+l]))
		off += l
	}
	return &p.msg, dns.RcodeSuccess
}

// ptrTargetLen is the length of o's PTR target.
func ptrTargetLen(o *ReverseName, addr netip.Addr, zone string, buf []byte) int {
	n := len(o.Service) + 1 + len(o.Namespace) + len(".svc.") + len(zone)
	if o.Endpoint {
		if o.Label != "" {
			n += len(o.Label) + 1
		} else {
			n += len(appendDashed(buf, addr)) + 1
		}
	}
	return n
}
