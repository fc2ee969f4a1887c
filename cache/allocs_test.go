//go:build !race

package cache

import (
	"context"
	"testing"

	"github.com/miekg/dns"
)

// TestHitAllocs holds the hit path to its budget of 2 allocations (issue 5)
// when the writer takes bytes, as the front end does. The reply is patched
// in a pooled buffer, so there are none at all in the steady state.
func TestHitAllocs(t *testing.T) {
	for _, br := range benchReplies {
		h := hitHandler(t, br.qname, br.answer)
		r := q(br.qname, dns.TypeA)
		got := testing.AllocsPerRun(100, func() {
			_, _ = h.ServeDNS(context.Background(), nopWriter{}, r)
		})
		if want := 2.0; got > want {
			t.Errorf("%s: %v allocations per hit, budget %v", br.name, got, want)
		}
	}
}
