package resolver

import (
	"context"
	"errors"
	"fmt"

	"github.com/miekg/dns"
)

// Handler is one stage of the query chain.
//
// ServeDNS either writes a complete reply to w and returns the rcode it wrote,
// or writes nothing and returns one of the rcodes for which ClientWrote is
// false (SERVFAIL, REFUSED, FORMERR, NOTIMP); the front end then writes that
// reply. Stages never write error replies themselves, so the front end is the
// single place that shapes them (EDNS, truncation, metrics).
type Handler interface {
	ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (rcode int, err error)
	Name() string
}

// InlineHandler is a Handler that answers some queries without waiting on
// anything (no upstream, no lock held by a slow writer): the cache its fresh
// hits, the cluster-zone stage the names its index answers. The front end's
// UDP reader offers it each query before handing the query to a worker, a
// handoff that costs as much as such an answer itself.
//
// ServeInline either answers r as ServeDNS would (same reply, same rcode and
// error, same metrics) and reports true, or reports false having done
// nothing at all: no write to w, nothing counted, no state changed, since
// the query then goes to ServeDNS on a worker, which must not see it twice.
// A stage that passes a query on offers it to its next stage's ServeInline,
// if that one has it, and otherwise reports false.
//
// It must not keep ctx, w or r, or anything reachable from them, once it
// returns: the caller recycles them for the next query. In turn w keeps no
// reference to a message given to WriteMsg once WriteMsg returns (the front
// end packs it at once), so a stage may recycle its reply after writing it.
type InlineHandler interface {
	Handler
	ServeInline(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (served bool, rcode int, err error)
}

// HandlerFunc adapts a function to Handler; the name is used in logs and
// metrics.
type HandlerFunc struct {
	N string
	F func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error)
}

// ServeDNS implements Handler.
func (h HandlerFunc) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	return h.F(ctx, w, r)
}

// Name implements Handler.
func (h HandlerFunc) Name() string { return h.N }

// ClientWrote reports whether a stage that returned rcode has already written
// its reply. For the error rcodes below nothing has been written and the
// caller owns the reply.
func ClientWrote(rcode int) bool {
	switch rcode {
	case dns.RcodeServerFailure, dns.RcodeRefused, dns.RcodeFormatError, dns.RcodeNotImplemented:
		return false
	}
	return true
}

// ErrNoNext is returned when a stage passes a query on and no stage follows.
var ErrNoNext = errors.New("no next stage")

// NextOrFailure passes the query to next, or reports SERVFAIL with ErrNoNext
// when there is none. from names the calling stage for the error text.
func NextOrFailure(ctx context.Context, from string, next Handler, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if next == nil {
		return dns.RcodeServerFailure, fmt.Errorf("%s: %w", from, ErrNoNext)
	}
	return next.ServeDNS(ctx, w, r)
}

// Stage builds a Handler around the one that follows it.
type Stage func(next Handler) Handler

// Compile links stages so that stages[0] sees a query first and last answers
// whatever all of them pass on. It is built back to front, once; last may be
// nil, in which case the final stage's pass-on yields SERVFAIL.
func Compile(last Handler, stages ...Stage) Handler {
	h := last
	for i := len(stages) - 1; i >= 0; i-- {
		h = stages[i](h)
	}
	return h
}
