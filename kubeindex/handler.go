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
// shares. It holds no per-query state, only the pool inline replies are
// built in.
type engine struct {
	set     settings
	index   Index
	scratch scratchPool               // replies to ServeInline
	chaser  atomic.Pointer[chaserRef] // nil until SetChaser
	log     *slog.Logger              // never nil
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
	if (q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR) && inZone(name, h.e.set.zone) {
		return h.transfer(ctx, w, r, name)
	}
	m, rcode, pass := h.answer(ctx, r, name, nil)
	switch {
	case pass:
		return h.pass(ctx, w, r)
	case m == nil:
		return rcode, nil
	}
	return write(w, m)
}

// ServeInline implements resolver.InlineHandler: it answers what the index
// answers by itself, from the calling goroutine, and declines, having done
// nothing, what waits on anything else or is not its own: an unsynced index,
// zone transfers, ExternalName targets to resolve, names it passes to next.
func (h *Handler) ServeInline(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (served bool, rcode int, err error) {
	if len(r.Question) != 1 || r.Question[0].Qclass != dns.ClassINET || !h.e.index.Synced() {
		return false, 0, nil
	}
	q := r.Question[0]
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		return false, 0, nil
	}
	name := strings.ToLower(dns.Fqdn(q.Name))
	s := h.e.scratch.get()
	defer h.e.scratch.put(s) // after the write: w keeps nothing of m
	m, _, pass := h.answer(ctx, r, name, s)
	if pass || m == nil {
		return false, 0, nil // an error rcode is for ServeDNS to return and count
	}
	rcode, err = write(w, m)
	return true, rcode, err
}

func (h *Handler) pass(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	return resolver.NextOrFailure(ctx, "kubeindex", h.next, w, r)
}

func write(w dns.ResponseWriter, m *dns.Msg) (int, error) {
	if err := w.WriteMsg(m); err != nil {
		return m.Rcode, fmt.Errorf("kubeindex: write reply: %w", err)
	}
	return m.Rcode, nil
}

// answer looks name (lower case) up: it returns the reply to write, or nil
// and an rcode the front end writes (SERVFAIL), or pass when the name is for
// next (not ours, fallthrough) or, inline (s not nil), for ServeDNS. Negative
// outcomes become NXDOMAIN or NODATA with the SOA of the zone answered; an
// index that has not synced yet never denies a name: SERVFAIL instead.
func (h *Handler) answer(ctx context.Context, r *dns.Msg, name string, s *scratch) (m *dns.Msg, rcode int, pass bool) {
	set := &h.e.set
	zone := set.zone
	if inZone(name, zone) {
		m, rcode = h.cluster(ctx, r, name, s)
	} else {
		rz, addr, ok := set.reverseName(name)
		if !ok {
			return nil, 0, true
		}
		zone = rz.name
		m, rcode = h.reverse(r, addr, s)
	}
	switch {
	case m != nil:
		return m, m.Rcode, false
	case rcode == declined:
		return nil, 0, true
	case !resolver.ClientWrote(rcode):
		return nil, rcode, false
	case !h.e.index.Synced():
		return nil, dns.RcodeServerFailure, false
	case rcode == dns.RcodeNameError && set.fallsThrough(name):
		return nil, 0, true
	}
	return set.newNegative(r, rcode, zone, h.e.index.Serial(), s), rcode, false
}

// Outcomes of a lookup without a reply: answer turns nxdomain and nodata
// into negative answers, and declined into passing the query on.
const (
	nxdomain = dns.RcodeNameError
	nodata   = dns.RcodeSuccess
	declined = -1
)

// cluster answers name (lower case, inside the cluster zone). It returns the
// reply, or nil and the negative outcome.
func (h *Handler) cluster(ctx context.Context, r *dns.Msg, name string, s *scratch) (*dns.Msg, int) {
	set, idx := &h.e.set, h.e.index
	n := parseClusterName(name, set.zone)
	qtype := r.Question[0].Qtype
	switch n.kind {
	case nameApex:
		return h.apex(r, qtype, s)
	case nameVersion:
		if qtype != dns.TypeTXT {
			return nil, nodata
		}
		p := newReply(r, s)
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
		return h.pod(r, n, s)
	case nameService, nameEndpoint, nameProto, namePort:
		if v := idx.Service(n.ns, n.svc); v != nil {
			return h.service(ctx, r, &n, v, s)
		}
	}
	return nil, nxdomain
}

// apex answers the zone's own name: SOA (R13), NS (R14), NODATA otherwise.
func (h *Handler) apex(r *dns.Msg, qtype uint16, s *scratch) (*dns.Msg, int) {
	set := &h.e.set
	owner := r.Question[0].Name
	switch qtype {
	case dns.TypeSOA:
		p := newReply(r, s)
		p.answer(set.soa(owner, h.e.index.Serial()))
		return &p.msg, dns.RcodeSuccess
	case dns.TypeNS:
		p := newReply(r, s)
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
func (h *Handler) pod(r *dns.Msg, n clusterName, s *scratch) (*dns.Msg, int) {
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
	p := newReply(r, s)
	p.answer(p.addr(r.Question[0].Name, set.ttl, addr))
	return &p.msg, dns.RcodeSuccess
}
