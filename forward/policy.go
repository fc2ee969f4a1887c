package forward

import (
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"
)

// group is the upstream list of one zone (or the default list) with the
// order it is tried in.
type group struct {
	ups    []*upstream
	policy string
	next   atomic.Uint32 // round_robin: index of the next first choice
}

// order appends the group's upstreams to dst in the order this query tries
// them. Down upstreams are kept; the caller skips them.
func (g *group) order(dst []*upstream) []*upstream {
	dst = append(dst, g.ups...)
	n := len(dst)
	if n < 2 {
		return dst
	}
	switch g.policy {
	case PolicyRandom:
		for i := n - 1; i > 0; i-- {
			j := rand.IntN(i + 1)
			dst[i], dst[j] = dst[j], dst[i]
		}
	case PolicyRoundRobin:
		k := int((g.next.Add(1) - 1) % uint32(n))
		slices.Reverse(dst[:k]) // rotate left by k in place
		slices.Reverse(dst[k:])
		slices.Reverse(dst)
	}
	return dst
}

// route returns the group of the most specific zone containing qname, or the
// default group.
func (f *Forward) route(qname string) *group {
	if len(f.zones) == 0 {
		return f.def
	}
	name := strings.ToLower(qname) // allocates only for upper-case names
	for off := 0; ; {
		if g, ok := f.zones[name[off:]]; ok {
			return g
		}
		next, end := dns.NextLabel(name, off)
		if end {
			break
		}
		off = next
	}
	if g, ok := f.zones["."]; ok {
		return g
	}
	return f.def
}
