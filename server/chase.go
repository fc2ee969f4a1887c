package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/kubeindex"
	"github.com/clusterdns/clusterdns/resolver"
)

// maxChaseDepth bounds nested chases (an ExternalName pointing at another
// ExternalName...), so a CNAME loop between services ends.
const maxChaseDepth = 8

// ErrChaseDepth is returned when a chase nests deeper than maxChaseDepth.
var ErrChaseDepth = errors.New("chase depth exceeded")

// ErrNotRunning is returned by operations that need a started server.
var ErrNotRunning = errors.New("server not running")

type chaseDepthKey struct{}

// chaser resolves names for kubeindex through the current chain, so
// ExternalName targets are cached and resolved like client queries. It
// always uses the chain of the moment, never one captured at build time.
type chaser struct{ s *Server }

var _ kubeindex.Chaser = chaser{}

// Chase runs name/qtype through the whole chain and returns the reply. A
// stage that wrote nothing yields a reply carrying only its rcode; the
// error is reserved for chases that could not run at all.
func (c chaser) Chase(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	depth, _ := ctx.Value(chaseDepthKey{}).(int)
	if depth >= maxChaseDepth {
		return nil, fmt.Errorf("chase %s %s: %w", name, dns.TypeToString[qtype], ErrChaseDepth)
	}
	st := c.s.current.Load()
	if st == nil {
		return nil, fmt.Errorf("chase %s: %w", name, ErrNotRunning)
	}
	ctx = context.WithValue(ctx, chaseDepthKey{}, depth+1)
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.SetEdns0(1232, false)
	rec := resolver.NewRecorder(nil)
	rcode, err := st.chain.ServeDNS(ctx, rec, q)
	if err != nil {
		c.s.log.Debug("chase failed", "name", name, "qtype", dns.TypeToString[qtype], "rcode", dns.RcodeToString[rcode], "err", err)
	}
	if rec.Msg == nil || !resolver.ClientWrote(rcode) {
		m := new(dns.Msg)
		m.SetRcode(q, rcode)
		return m, nil
	}
	return rec.Msg, nil
}
