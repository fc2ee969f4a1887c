package kubeindex

import (
	"net/netip"
	"strings"
)

// nameKind is the shape of a name under the cluster zone.
type nameKind uint8

const (
	nameNone         nameKind = iota // no such shape: NXDOMAIN (R16)
	nameApex                         // <zone>
	nameVersion                      // dns-version.<zone>
	nameSvcRoot                      // svc.<zone>
	namePodRoot                      // pod.<zone>
	nameNamespace                    // <ns>.svc.<zone>
	nameService                      // <svc>.<ns>.svc.<zone>
	nameEndpoint                     // <ep>.<svc>.<ns>.svc.<zone>
	nameProto                        // _<proto>.<svc>.<ns>.svc.<zone> (empty non-terminal)
	namePort                         // _<port>._<proto>.<svc>.<ns>.svc.<zone>
	namePodNamespace                 // <ns>.pod.<zone>
	namePod                          // <ip-dashed>.<ns>.pod.<zone>
)

// clusterName is a parsed name under the cluster zone. Its strings are
// substrings of the lower-case query name: parsing allocates nothing.
type clusterName struct {
	kind  nameKind
	ns    string
	svc   string
	ep    string // endpoint label, or the dashed pod address for namePod
	port  string // without the leading '_'
	proto string // without the leading '_'
	// svcName is "<svc>.<ns>.svc.<zone>" when the name is at or below a
	// service: the SRV target of ClusterIP services and the suffix of
	// endpoint names.
	svcName string
}

// maxLabels is the deepest name below the zone we answer (namePort).
const maxLabels = 5

// inZone reports whether name is zone or below it; both lower-case FQDNs.
func inZone(name, zone string) bool {
	if zone == "." {
		return true
	}
	if !strings.HasSuffix(name, zone) {
		return false
	}
	n := len(name) - len(zone)
	return n == 0 || name[n-1] == '.'
}

// parseClusterName classifies name (lower-case FQDN inside zone).
func parseClusterName(name, zone string) clusterName {
	rest := name[:len(name)-len(zone)] // "" or ending in '.'
	if rest == "" {
		return clusterName{kind: nameApex}
	}
	if strings.IndexByte(rest, '\\') >= 0 {
		return clusterName{} // escaped bytes never spell one of our names
	}
	// labels[0] is the label right under the zone.
	var labels [maxLabels]string
	var starts [maxLabels]int
	n := 0
	end := len(rest) - 1 // index of the trailing dot
	for end >= 0 {
		if n == maxLabels {
			return clusterName{} // too deep
		}
		start := strings.LastIndexByte(rest[:end], '.') + 1
		if start == end {
			return clusterName{} // empty label
		}
		labels[n], starts[n] = rest[start:end], start
		n++
		end = start - 1
	}
	var c clusterName
	switch labels[0] {
	case "dns-version":
		if n == 1 {
			c.kind = nameVersion
		}
	case "pod":
		switch n {
		case 1:
			c.kind = namePodRoot
		case 2:
			c.kind, c.ns = namePodNamespace, labels[1]
		case 3:
			c.kind, c.ns, c.ep = namePod, labels[1], labels[2]
		}
	case "svc":
		if n >= 3 {
			c.ns, c.svc, c.svcName = labels[1], labels[2], name[starts[2]:]
		}
		switch n {
		case 1:
			c.kind = nameSvcRoot
		case 2:
			c.kind, c.ns = nameNamespace, labels[1]
		case 3:
			c.kind = nameService
		case 4:
			if p, ok := strings.CutPrefix(labels[3], "_"); ok {
				c.kind, c.proto = nameProto, p
			} else {
				c.kind, c.ep = nameEndpoint, labels[3]
			}
		case 5:
			port, ok1 := strings.CutPrefix(labels[4], "_")
			proto, ok2 := strings.CutPrefix(labels[3], "_")
			if ok1 && ok2 && port != "" && proto != "" {
				c.kind, c.port, c.proto = namePort, port, proto
			}
		}
	}
	if c.kind == nameNone {
		return clusterName{}
	}
	return c
}

// maxDashed is the longest dashed address: a full IPv6 address with a zone
// is not possible here, so 39 characters suffice.
const maxDashed = 48

// appendDashed appends addr written as an endpoint label (R7): dots and
// colons become dashes, and a leading or trailing dash gets a '0' so the
// label is valid ("::1" -> "0--1", "fd00::" -> "fd00--0").
func appendDashed(b []byte, addr netip.Addr) []byte {
	start := len(b)
	if addr.Is6() && addr.Unmap().Is4() {
		addr = addr.Unmap()
	}
	b = addr.AppendTo(b)
	for i := start; i < len(b); i++ {
		if b[i] == '.' || b[i] == ':' {
			b[i] = '-'
		}
	}
	if len(b) > start && b[start] == '-' {
		b = append(b, 0)
		copy(b[start+1:], b[start:len(b)-1])
		b[start] = '0'
	}
	if len(b) > start && b[len(b)-1] == '-' {
		b = append(b, '0')
	}
	return b
}

// dashedIs reports whether label is addr written as an endpoint label.
func dashedIs(label string, addr netip.Addr) bool {
	if len(label) > maxDashed {
		return false
	}
	var buf [maxDashed]byte
	return string(appendDashed(buf[:0], addr)) == label
}

// parseDashed parses a dashed address label (a pod name, R12) the way
// appendDashed writes it. Non-canonical spellings of an address are refused,
// so every record has exactly one name.
func parseDashed(label string) (netip.Addr, bool) {
	if len(label) > maxDashed {
		return netip.Addr{}, false
	}
	var buf [maxDashed]byte
	b := buf[:len(label)]
	var addr netip.Addr
	ok := false
	if strings.Count(label, "-") == 3 {
		addr, ok = parseIPv4(undash(b, label, '.'))
	}
	if !ok {
		a, err := netip.ParseAddr(string(undash(b, label, ':')))
		if err != nil || !a.Is6() || a.Zone() != "" || a.Is4In6() {
			return netip.Addr{}, false
		}
		addr = a
	}
	if !dashedIs(label, addr) {
		return netip.Addr{}, false
	}
	return addr, true
}

// undash copies label into b (of the same length) with every '-' as sep.
func undash(b []byte, label string, sep byte) []byte {
	for i := range len(label) {
		c := label[i]
		if c == '-' {
			c = sep
		}
		b[i] = c
	}
	return b
}

// parseIPv4 parses dotted-quad bytes without allocating.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var out [4]byte
	i := 0
	for k := range 4 {
		if k > 0 {
			if i >= len(b) || b[i] != '.' {
				return netip.Addr{}, false
			}
			i++
		}
		v, digits := 0, 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			v = v*10 + int(b[i]-'0')
			i++
			digits++
			if digits > 3 || v > 255 {
				return netip.Addr{}, false
			}
		}
		if digits == 0 || digits > 1 && b[i-digits] == '0' {
			return netip.Addr{}, false
		}
		out[k] = byte(v)
	}
	if i != len(b) {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(out), true
}
