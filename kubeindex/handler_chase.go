package kubeindex

import (
	"context"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
)

// maxChaseDepth bounds nested ExternalName chases. A CNAME loop (through the
// index or through the rest of the chain and back) ends in SERVFAIL instead
// of recursing forever; the depth travels in the context, so a Chaser must
// pass ctx on to the chain it resolves through.
const maxChaseDepth = 8

type chaseDepthKey struct{}

// external answers <svc>.<ns>.svc.<zone> of an ExternalName service (R11):
// the CNAME, and for any type but CNAME, ANY and SRV the target's records
// with the target's rcode. Answered inline (s not nil), a reply that needs
// the target is declined: resolving it may wait on the rest of the chain.
func (h *Handler) external(ctx context.Context, r *dns.Msg, v *ServiceView, s *scratch) (*dns.Msg, int) {
	q := r.Question[0]
	if q.Qtype == dns.TypeSRV {
		return nil, nodata
	}
	chased := q.Qtype != dns.TypeCNAME && q.Qtype != dns.TypeANY
	if chased && s != nil {
		return nil, declined
	}
	set := &h.e.set
	p := newReply(r, s)
	p.answer(&dns.CNAME{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: set.ttl}, Target: v.ExternalName})
	if !chased {
		return &p.msg, dns.RcodeSuccess
	}
	res, rcode := h.chase(ctx, v.ExternalName, q.Qtype)
	if res == nil {
		if rcode != dns.RcodeSuccess {
			return nil, rcode
		}
		return &p.msg, dns.RcodeSuccess // nothing to chase through: the client follows the CNAME
	}
	if res.Rcode != dns.RcodeSuccess && res.Rcode != dns.RcodeNameError {
		return nil, dns.RcodeServerFailure
	}
	p.msg.Rcode = res.Rcode
	positive := false
	for _, rr := range res.Answer {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		positive = positive || rr.Header().Rrtype == q.Qtype
		p.answer(dns.Copy(rr)) // the chased reply may be shared with a cache
	}
	if positive && res.Rcode == dns.RcodeSuccess {
		return &p.msg, dns.RcodeSuccess
	}
	// A negative answer for the target: its SOA (or ours when the target's
	// reply has none) makes the CNAME's denial cacheable.
	for _, rr := range res.Ns {
		if rr.Header().Rrtype == dns.TypeSOA {
			p.msg.Ns = append(p.msg.Ns, dns.Copy(rr))
		}
	}
	if len(p.msg.Ns) == 0 {
		p.msg.Ns = append(p.msg.Ns, set.soa(set.zone, h.e.index.Serial()))
	}
	return &p.msg, res.Rcode
}

// chase resolves target: from the index when it is in the cluster zone,
// otherwise through the Chaser. It returns the reply, or nil and
// SERVFAIL when resolution failed, or nil and NOERROR when there is no
// Chaser to ask.
func (h *Handler) chase(ctx context.Context, target string, qtype uint16) (*dns.Msg, int) {
	depth, _ := ctx.Value(chaseDepthKey{}).(int)
	if depth >= maxChaseDepth {
		h.e.log.Debug("ExternalName chase too deep, answering SERVFAIL", "target", target, "depth", depth)
		return nil, dns.RcodeServerFailure
	}
	ctx = context.WithValue(ctx, chaseDepthKey{}, depth+1)
	if inZone(target, h.e.set.zone) {
		q := new(dns.Msg)
		q.SetQuestion(target, qtype)
		rec := resolver.NewRecorder(nil)
		rcode, err := h.ServeDNS(ctx, rec, q)
		if err != nil || !resolver.ClientWrote(rcode) || rec.Msg == nil {
			return nil, dns.RcodeServerFailure
		}
		return rec.Msg, rec.Msg.Rcode
	}
	ref := h.e.chaser.Load()
	if ref == nil {
		return nil, dns.RcodeSuccess
	}
	m, err := ref.c.Chase(ctx, target, qtype)
	if err != nil || m == nil {
		h.e.log.Debug("ExternalName chase failed", "target", target, "err", err)
		return nil, dns.RcodeServerFailure
	}
	return m, m.Rcode
}
