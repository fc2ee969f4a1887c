package forward

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// TestUpstreamIDsUnpredictable reads the IDs of many upstream queries made
// for one client ID: they must look drawn at random (no counter, no
// constant, both bytes spread), which is what makes blind spoofing cost
// 65536 guesses per query.
func TestUpstreamIDsUnpredictable(t *testing.T) {
	seen := &recorder{}
	stub := resolvertest.StartServer(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		seen.add(r, w.RemoteAddr())
		_ = w.WriteMsg(aReply(r, "192.0.2.1"))
	}))
	f := start(t, testConfig(stub.Addr))
	const n = 2000
	for range n {
		q := resolvertest.Query("id.example.org.", dns.TypeA)
		q.Id = 7
		if got, _, err := ask(t, f, q); err != nil || got == nil || got.Id != 7 {
			t.Fatalf("reply %v err %v, want the client's ID 7", got, err)
		}
	}
	msgs, _ := seen.snapshot()
	if len(msgs) != n {
		t.Fatalf("upstream saw %d queries, want %d", len(msgs), n)
	}
	ids := map[uint16]bool{}
	highs, lows := map[byte]bool{}, map[byte]bool{}
	diffs := map[uint16]int{}
	for i, m := range msgs {
		ids[m.Id] = true
		highs[byte(m.Id>>8)], lows[byte(m.Id)] = true, true
		if i > 0 {
			diffs[m.Id-msgs[i-1].Id]++
		}
	}
	// 2000 uniform draws from 65536: ~30 repeats expected, >100 has odds
	// far below 1e-9; a counter or a few fixed IDs fails at once.
	if len(ids) < n-100 {
		t.Errorf("%d distinct IDs in %d queries", len(ids), n)
	}
	if len(highs) < 240 || len(lows) < 240 {
		t.Errorf("ID bytes cover %d high and %d low values, want both spread over 256", len(highs), len(lows))
	}
	for d, c := range diffs {
		if c > 20 {
			t.Errorf("%d consecutive IDs differ by %d: a sequence, not random", c, d)
		}
	}
}
