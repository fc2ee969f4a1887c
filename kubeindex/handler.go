package kubeindex

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
)

// Chaser resolves a name through the whole chain (cache, index, forward); the
// server implements it. The index uses it for ExternalName targets. Chase
// must hand ctx to the chain: it carries the chase depth that ends CNAME
// loops. A reply with rcode SERVFAIL, or an error, fails the query.
type Chaser interface {
	Chase(ctx context.Context, name string, qtype uint16) (*dns.Msg, error)
}

// engine is the answering half of Kube: what every Handler built by Wrap
// shares. It holds no per-query state.
type engine struct {
	set    settings
	index  Index
	chaser atomic.Pointer[chaserRef] // nil until SetChaser
	log    *slog.Logger              // never nil
}

type chaserRef struct{ c Chaser }

func newEngine(set settings, index Index, log *slog.Logger) *engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &engine{set: set, index: index, log: log}
}

// wrap returns the Handler answering in front of next.
func (e *engine) wrap(next resolver.Handler) resolver.Handler {
	return &Handler{e: e, next: next}
}

// Handler answers every name under the cluster zone and the index's names in
// the reverse zones; everything else goes to next untouched.
type Handler struct {
	e    *engine
	next resolver.Handler
}

// Name implements resolver.Handler.
func (h *Handler) Name() string { return "kubeindex" }

// ServeDNS implements resolver.Handler.
func (h *Handler) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if len(r.Question) != 1 || r.Question[0].Qclass != dns.ClassINET {
		return h.pass(ctx, w, r)
	}
	q := r.Question[0]
	name := strings.ToLower(dns.Fqdn(q.Name)) // allocates only for mixed case
	set := &h.e.set
	if inZone(name, set.zone) {
		if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
			return h.transfer(ctx, w, r, name)
		}
		m, rcode := h.cluster(ctx, r, name)
		return h.respond(ctx, w, r, name, set.zone, m, rcode)
	}
	if rz, addr, ok := set.reverseName(name); ok {
		return h.reverse(ctx, w, r, name, rz, addr)
	}
	return h.pass(ctx, w, r)
}

func (h *Handler) pass(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	return resolver.NextOrFailure(ctx, "kubeindex", h.next, w, r)
}

// respond writes m, or for m == nil the negative answer rcode (NXDOMAIN or
// NOERROR meaning NODATA) with the SOA of zone. An index that has not synced
// yet never denies a name: it returns SERVFAIL instead.
func (h *Handler) respond(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, name, zone string, m *dns.Msg, rcode int) (int, error) {
	if m == nil {
		if !resolver.ClientWrote(rcode) {
			return rcode, nil
		}
		if !h.e.index.Synced() {
			return dns.RcodeServerFailure, nil
		}
		if rcode == dns.RcodeNameError && h.e.set.fallsThrough(name) {
			return h.pass(ctx, w, r)
		}
		m = h.e.set.newNegative(r, rcode, zone, h.e.index.Serial())
	}
	if err := w.WriteMsg(m); err != nil {
		return m.Rcode, fmt.Errorf("kubeindex: write reply: %w", err)
	}
	return m.Rcode, nil
}

// Outcomes of a lookup without a reply: respond turns them into negative
// answers.
const (
	nxdomain = dns.RcodeNameError
	nodata   = dns.RcodeSuccess
)

// cluster answers name (lower case, inside the cluster zone). It returns the
// reply, or nil and the negative outcome.
func (h *Handler) cluster(ctx context.Context, r *dns.Msg, name string) (*dns.Msg, int) {
	set, idx := &h.e.set, h.e.index
	n := parseClusterName(name, set.zone)
	qtype := r.Question[0].Qtype
	switch n.kind {
	case nameApex:
		return h.apex(r, qtype)
	case nameVersion:
		if qtype != dns.TypeTXT {
			return nil, nodata
		}
		p := newReply(r)
		p.answer(&dns.TXT{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 28800}, Txt: set.version})
		return &p.msg, dns.RcodeSuccess
	case nameSvcRoot, namePodRoot:
		return nil, nodata
	case nameNamespace:
		if idx.HasNamespace(n.ns) {
			return nil, nodata
		}
	case namePodNamespace:
		if set.pods != PodsDisabled && idx.HasNamespace(n.ns) {
			return nil, nodata
		}
	case namePod:
		return h.pod(r, n)
	case nameService, nameEndpoint, nameProto, namePort:
		if v := idx.Service(n.ns, n.svc); v != nil {
			return h.service(ctx, r, &n, v)
		}
	}
	return nil, nxdomain
}

// apex answers the zone's own name: SOA (R13), NS (R14), NODATA otherwise.
func (h *Handler) apex(r *dns.Msg, qtype uint16) (*dns.Msg, int) {
	set := &h.e.set
	owner := r.Question[0].Name
	switch qtype {
	case dns.TypeSOA:
		p := newReply(r)
		p.answer(set.soa(owner, h.e.index.Serial()))
		return &p.msg, dns.RcodeSuccess
	case dns.TypeNS:
		p := newReply(r)
		p.answer(&dns.NS{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: set.ttl}, Ns: set.nsTarget})
		if v := h.e.index.Service(set.nsNamespace, set.nsService); v != nil {
			for _, a := range v.ClusterIPs {
				p.extra(p.addr(set.nsTarget, set.ttl, a))
			}
			if v.Kind == KindHeadless {
				for i := range v.Endpoints {
					p.extra(p.addr(set.nsTarget, set.ttl, v.Endpoints[i].Addr))
				}
			}
		}
		return &p.msg, dns.RcodeSuccess
	}
	return nil, nodata
}

// pod answers <ip-dashed>.<ns>.pod.<zone> per the pods mode (R12).
func (h *Handler) pod(r *dns.Msg, n clusterName) (*dns.Msg, int) {
	set, idx := &h.e.set, h.e.index
	if set.pods == PodsDisabled {
		return nil, nxdomain
	}
	addr, ok := parseDashed(n.ep)
	if !ok {
		return nil, nxdomain
	}
	if set.pods == PodsVerified && !idx.HasPod(n.ns, addr) || set.pods != PodsVerified && !idx.HasNamespace(n.ns) {
		return nil, nxdomain
	}
	if !wantsFamily(r.Question[0].Qtype, addr) {
		return nil, nodata
	}
	p := newReply(r)
	p.answer(p.addr(r.Question[0].Name, set.ttl, addr))
	return &p.msg, dns.RcodeSuccess
}
