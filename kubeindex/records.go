package kubeindex

import (
	"context"
	"net/netip"

	"github.com/miekg/dns"
)

// wantsFamily reports whether addr answers qtype (A for IPv4, AAAA for IPv6).
func wantsFamily(qtype uint16, addr netip.Addr) bool {
	return qtype == dns.TypeA && addr.Is4() || qtype == dns.TypeAAAA && addr.Is6()
}

// service answers the names at and below <svc>.<ns>.svc.<zone> (R2-R8, R11).
func (h *Handler) service(ctx context.Context, r *dns.Msg, n *clusterName, v *ServiceView, s *scratch) (*dns.Msg, int) {
	if v.Kind == KindExternalName {
		if n.kind != nameService {
			return nil, nxdomain // nothing lives below a CNAME
		}
		return h.external(ctx, r, v, s)
	}
	if len(v.Endpoints) == 0 && (v.Kind == KindHeadless || h.e.set.ignoreEmpty) {
		return nil, nxdomain
	}
	switch n.kind {
	case nameService:
		return h.serviceName(r, n, v, s)
	case nameEndpoint:
		return h.endpointName(r, n, v, s)
	case nameProto:
		if hasPort(v, "", n.proto) {
			return nil, nodata // empty non-terminal above _<port>._<proto>
		}
		return nil, nxdomain
	case namePort:
		if !hasPort(v, n.port, n.proto) {
			return nil, nxdomain
		}
		if r.Question[0].Qtype != dns.TypeSRV {
			return nil, nodata
		}
		if v.Kind == KindHeadless {
			return h.headlessSRV(r, n, v, n.port, n.proto, s)
		}
		return h.clusterSRV(r, n, v, n.port, n.proto, s)
	}
	return nil, nxdomain
}

// serviceName answers <svc>.<ns>.svc.<zone> of a ClusterIP or headless
// service.
func (h *Handler) serviceName(r *dns.Msg, n *clusterName, v *ServiceView, s *scratch) (*dns.Msg, int) {
	qtype := r.Question[0].Qtype
	switch qtype {
	case dns.TypeA, dns.TypeAAAA:
	case dns.TypeSRV:
		if v.Kind == KindHeadless {
			return h.headlessSRV(r, n, v, "", "", s)
		}
		if len(v.Ports) == 0 {
			return nil, nodata
		}
		return h.clusterSRV(r, n, v, "", "", s)
	default:
		return nil, nodata
	}
	owner, ttl := r.Question[0].Name, h.e.set.ttl
	if v.Kind == KindClusterIP {
		var p *reply
		for _, a := range v.ClusterIPs {
			if wantsFamily(qtype, a) {
				if p == nil {
					p = newReply(r, s)
				}
				p.answer(p.addr(owner, ttl, a))
			}
		}
		if p == nil {
			return nil, nodata
		}
		return &p.msg, dns.RcodeSuccess
	}
	count := 0
	for i := range v.Endpoints {
		if wantsFamily(qtype, v.Endpoints[i].Addr) {
			count++
		}
	}
	if count == 0 {
		return nil, nodata // ready endpoints of the other family only
	}
	p := newReply(r, s)
	if qtype == dns.TypeA {
		p.reserveAddrs(count, 0)
	} else {
		p.reserveAddrs(0, count)
	}
	p.reserveAnswer(count)
	for i := range v.Endpoints {
		if a := v.Endpoints[i].Addr; wantsFamily(qtype, a) {
			p.answer(p.addr(owner, ttl, a))
		}
	}
	return &p.msg, dns.RcodeSuccess
}

// endpointName answers <ep>.<svc>.<ns>.svc.<zone> (R7): every address of the
// endpoints named ep, by hostname or by dashed address.
func (h *Handler) endpointName(r *dns.Msg, n *clusterName, v *ServiceView, s *scratch) (*dns.Msg, int) {
	qtype := r.Question[0].Qtype
	found := false
	var p *reply
	for i := range v.Endpoints {
		ep := &v.Endpoints[i]
		if !endpointIs(ep, n.ep) {
			continue
		}
		found = true
		if wantsFamily(qtype, ep.Addr) {
			if p == nil {
				p = newReply(r, s)
			}
			p.answer(p.addr(r.Question[0].Name, h.e.set.ttl, ep.Addr))
		}
	}
	switch {
	case p != nil:
		return &p.msg, dns.RcodeSuccess
	case found:
		return nil, nodata
	}
	return nil, nxdomain
}

// endpointIs reports whether label names ep under its service.
func endpointIs(ep *Endpoint, label string) bool {
	if ep.Label != "" {
		return ep.Label == label
	}
	return dashedIs(label, ep.Addr)
}

// hasPort reports whether v has a named port matching name (any name when
// "") and proto: the service's ports for ClusterIP services, the endpoints'
// for headless ones.
func hasPort(v *ServiceView, name, proto string) bool {
	if v.Kind != KindHeadless {
		return matchPorts(v.Ports, name, proto) > 0
	}
	for i := range v.Endpoints {
		if matchPorts(v.Endpoints[i].Ports, name, proto) > 0 {
			return true
		}
	}
	return false
}

// portMatches reports whether pt answers _<name>._<proto>; name and proto
// "" match every port (the bare-name SRV of R4), name "" alone every named
// port of proto.
func portMatches(pt *Port, name, proto string) bool {
	if proto == "" {
		return true
	}
	return pt.Name != "" && pt.Protocol == proto && (name == "" || pt.Name == name)
}

func matchPorts(ports []Port, name, proto string) int {
	n := 0
	for i := range ports {
		if portMatches(&ports[i], name, proto) {
			n++
		}
	}
	return n
}

// clusterSRV answers SRV for a ClusterIP service (R3, R4): one record per
// matching service port targeting the service name, whose addresses go in
// the additional section.
func (h *Handler) clusterSRV(r *dns.Msg, n *clusterName, v *ServiceView, port, proto string, s *scratch) (*dns.Msg, int) {
	ttl := h.e.set.ttl
	count := matchPorts(v.Ports, port, proto)
	p := newReply(r, s)
	p.reserveAnswer(count)
	p.srv.reserve(count)
	w := srvWeight(count)
	for i := range v.Ports {
		if pt := &v.Ports[i]; portMatches(pt, port, proto) {
			p.answer(p.newSRV(r.Question[0].Name, ttl, w, pt.Port, n.svcName))
		}
	}
	for _, a := range v.ClusterIPs {
		p.extra(p.addr(n.svcName, ttl, a))
	}
	return &p.msg, dns.RcodeSuccess
}
