package kubeindex

import (
	"strings"

	"github.com/miekg/dns"
)

// epInfo is what a headless SRV answer needs per endpoint. Endpoints sharing
// a name (one hostname, several addresses: e.g. a dual-stack pod) form one
// SRV target; the first of them carries the group's facts.
type epInfo struct {
	first  int    // index of the first endpoint with the same name
	name   string // "<ep>.<svc>.<ns>.svc.<zone>", set on the first only
	hasSRV bool   // the group has at least one SRV record; first only
}

// quadraticLimit is the endpoint count up to which grouping by name scans
// instead of building a map.
const quadraticLimit = 32

// groupEndpoints fills infos[i].first and the names of the groups, all names
// built into one string.
func groupEndpoints(eps []Endpoint, svcName string, infos []epInfo) {
	var byLabel map[string]int
	if len(eps) > quadraticLimit {
		byLabel = make(map[string]int, len(eps))
	}
	size := 0
	var buf [maxDashed]byte
	for i := range eps {
		infos[i].first = i
		if l := eps[i].Label; l != "" {
			if byLabel != nil {
				if j, ok := byLabel[l]; ok {
					infos[i].first = j
				} else {
					byLabel[l] = i
				}
			} else {
				for j := range i {
					if eps[j].Label == l {
						infos[i].first = j
						break
					}
				}
			}
		}
		if infos[i].first == i {
			size += len(endpointLabel(buf[:0], &eps[i])) + 1 + len(svcName)
		}
	}
	var b strings.Builder
	b.Grow(size)
	for i := range eps {
		if infos[i].first == i {
			b.Write(endpointLabel(buf[:0], &eps[i]))
			b.WriteByte('.')
			b.WriteString(svcName)
		}
	}
	all, off := b.String(), 0
	for i := range eps {
		if infos[i].first == i {
			l := len(endpointLabel(buf[:0], &eps[i])) + 1 + len(svcName)
			infos[i].name = all[off : off+l]
			off += l
		}
	}
}

// endpointLabel appends the label that names ep under its service.
func endpointLabel(b []byte, ep *Endpoint) []byte {
	if ep.Label != "" {
		return append(b, ep.Label...)
	}
	return appendDashed(b, ep.Addr)
}

// portSeen reports whether an earlier endpoint of i's group already has a
// port equal to pt, so the group's SRV for it exists already.
func portSeen(eps []Endpoint, infos []epInfo, i int, pt *Port) bool {
	f := infos[i].first
	if f == i {
		return false
	}
	for j := f; j < i; j++ {
		if infos[j].first != f {
			continue
		}
		for k := range eps[j].Ports {
			if q := &eps[j].Ports[k]; q.Port == pt.Port && q.Protocol == pt.Protocol && q.Name == pt.Name {
				return true
			}
		}
	}
	return false
}

// headlessSRV answers SRV for a headless service (R4, R8): one record per
// (endpoint name x matching endpoint port), each target's addresses in the
// additional section.
func (h *Handler) headlessSRV(r *dns.Msg, n *clusterName, v *ServiceView, port, proto string, s *scratch) (*dns.Msg, int) {
	eps := v.Endpoints
	var stack [16]epInfo
	var infos []epInfo
	if len(eps) <= len(stack) {
		infos = stack[:len(eps)]
	} else {
		infos = make([]epInfo, len(eps))
	}
	groupEndpoints(eps, n.svcName, infos)
	total := 0
	for i := range eps {
		for k := range eps[i].Ports {
			if pt := &eps[i].Ports[k]; portMatches(pt, port, proto) && !portSeen(eps, infos, i, pt) {
				total++
				infos[infos[i].first].hasSRV = true
			}
		}
	}
	if total == 0 {
		return nil, nodata
	}
	n4, n6 := 0, 0
	for i := range eps {
		if infos[infos[i].first].hasSRV {
			if eps[i].Addr.Is4() {
				n4++
			} else {
				n6++
			}
		}
	}
	ttl, owner, w := h.e.set.ttl, r.Question[0].Name, srvWeight(total)
	p := newReply(r, s)
	p.reserveAnswer(total)
	p.reserveExtra(n4 + n6)
	p.srv.reserve(total)
	p.reserveAddrs(n4, n6)
	for i := range eps {
		target := infos[infos[i].first].name
		for k := range eps[i].Ports {
			if pt := &eps[i].Ports[k]; portMatches(pt, port, proto) && !portSeen(eps, infos, i, pt) {
				p.answer(p.newSRV(owner, ttl, w, pt.Port, target))
			}
		}
	}
	for i := range eps {
		if g := &infos[infos[i].first]; g.hasSRV {
			p.extra(p.addr(g.name, ttl, eps[i].Addr))
		}
	}
	return &p.msg, dns.RcodeSuccess
}
