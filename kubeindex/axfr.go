package kubeindex

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
)

// xfrMsgSize bounds the uncompressed records of one transfer message, well
// below the 64 KiB a TCP message may carry.
const xfrMsgSize = 16 << 10

// transfer answers AXFR (and IXFR, with a full transfer) of the cluster zone
// (R17): only over TCP, only to allowed clients, only once synced. The zone
// is streamed as SOA, every record, SOA, over as many messages as it takes.
func (h *Handler) transfer(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, name string) (int, error) {
	set, idx := &h.e.set, h.e.index
	if name != set.zone || resolver.Proto(w) != "tcp" || !set.transferAllowed(w.RemoteAddr()) {
		return dns.RcodeRefused, nil
	}
	if !idx.Synced() {
		return dns.RcodeServerFailure, nil
	}
	var views []*ServiceView
	idx.Walk(func(v *ServiceView) bool {
		views = append(views, v)
		return true
	})
	x := xfrWriter{w: w, r: r}
	soa := set.soa(set.zone, idx.Serial())
	x.add(soa)
	x.add(&dns.NS{Hdr: dns.RR_Header{Name: set.zone, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: set.ttl}, Ns: set.nsTarget})
	x.add(&dns.TXT{Hdr: dns.RR_Header{Name: "dns-version." + set.zone, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 28800}, Txt: set.version})
	for _, v := range views {
		if err := ctx.Err(); err != nil {
			return dns.RcodeServerFailure, fmt.Errorf("kubeindex: zone transfer: %w", err)
		}
		h.serviceRecords(ctx, v, x.add)
		if x.err != nil {
			break
		}
	}
	x.add(soa)
	x.flush()
	if x.err != nil {
		return dns.RcodeSuccess, fmt.Errorf("kubeindex: zone transfer: %w", x.err)
	}
	return dns.RcodeSuccess, nil
}

// transferAllowed reports whether a client at addr may transfer the zone.
func (s *settings) transferAllowed(addr net.Addr) bool {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range s.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// serviceRecords emits every record at and below v's name, built by the same
// code that answers queries so a transfer and the answers never disagree.
func (h *Handler) serviceRecords(ctx context.Context, v *ServiceView, emit func(dns.RR)) {
	n := clusterName{kind: nameService, ns: v.Namespace, svc: v.Name,
		svcName: v.Name + "." + v.Namespace + ".svc." + h.e.set.zone}
	ask := func(n clusterName, owner string, qtype uint16) {
		q := new(dns.Msg)
		q.SetQuestion(owner, qtype)
		if m, _ := h.service(ctx, q, &n, v, nil); m != nil && m.Rcode == dns.RcodeSuccess {
			for _, rr := range m.Answer {
				emit(rr)
			}
		}
	}
	if v.Kind == KindExternalName {
		ask(n, n.svcName, dns.TypeCNAME)
		return
	}
	if len(v.Endpoints) == 0 && (v.Kind == KindHeadless || h.e.set.ignoreEmpty) {
		return
	}
	ask(n, n.svcName, dns.TypeA)
	ask(n, n.svcName, dns.TypeAAAA)
	ask(n, n.svcName, dns.TypeSRV)
	// One _<port>._<proto> name per distinct named port.
	type portKey struct{ name, proto string }
	seen := map[portKey]bool{}
	visit := func(ports []Port) {
		for _, pt := range ports {
			k := portKey{pt.Name, pt.Protocol}
			if pt.Name == "" || seen[k] {
				continue
			}
			seen[k] = true
			pn := n
			pn.kind, pn.port, pn.proto = namePort, pt.Name, pt.Protocol
			ask(pn, "_"+pt.Name+"._"+pt.Protocol+"."+n.svcName, dns.TypeSRV)
		}
	}
	if v.Kind == KindHeadless {
		for i := range v.Endpoints {
			visit(v.Endpoints[i].Ports)
		}
	} else {
		visit(v.Ports)
	}
	// Endpoint names: every address under its group's name.
	infos := make([]epInfo, len(v.Endpoints))
	groupEndpoints(v.Endpoints, n.svcName, infos)
	for i := range v.Endpoints {
		a := v.Endpoints[i].Addr
		t := dns.TypeA
		if a.Is6() {
			t = dns.TypeAAAA
		}
		hdr := dns.RR_Header{Name: infos[infos[i].first].name, Rrtype: t, Class: dns.ClassINET, Ttl: h.e.set.ttl}
		if t == dns.TypeA {
			emit(&dns.A{Hdr: hdr, A: a.AsSlice()})
		} else {
			emit(&dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
}

// xfrWriter batches transfer records into messages of bounded size.
type xfrWriter struct {
	w    dns.ResponseWriter
	r    *dns.Msg
	rrs  []dns.RR
	size int
	err  error // first write error; later writes are skipped
}

func (x *xfrWriter) add(rr dns.RR) {
	x.rrs = append(x.rrs, rr)
	x.size += dns.Len(rr)
	if x.size >= xfrMsgSize {
		x.flush()
	}
}

func (x *xfrWriter) flush() {
	if len(x.rrs) == 0 || x.err != nil {
		return
	}
	m := new(dns.Msg)
	m.SetReply(x.r)
	m.Authoritative = true
	m.Answer = x.rrs
	x.err = x.w.WriteMsg(m)
	x.rrs, x.size = nil, 0
}
