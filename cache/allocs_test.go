//go:build !race

package cache

import (
	"context"
	"testing"

	"github.com/miekg/dns"
)

// TestHitAllocs holds the hit path to its budget: the reply (message,
// question and record slots in one allocation) plus one per record.
func TestHitAllocs(t *testing.T) {
	for _, br := range benchReplies {
		h := hitHandler(t, br.qname, br.answer)
		r := q(br.qname, dns.TypeA)
		got := testing.AllocsPerRun(100, func() {
			_, _ = h.ServeDNS(context.Background(), nopWriter{}, r)
		})
		if want := float64(1 + len(br.answer)); got > want {
			t.Errorf("%s: %v allocations per hit, budget %v", br.name, got, want)
		}
	}
}
