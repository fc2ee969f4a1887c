package resolvertest

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// Zone is a stub upstream on 127.0.0.1 answering from zone-file records: the
// records of the asked name and type, NODATA for a name it knows with another
// type, NXDOMAIN otherwise; negatives carry its SOA. Tests point the forward
// stage at it so no query ever leaves loopback.
type Zone struct {
	*Server
	// Queries counts the queries received, except those under Uncounted.
	Queries atomic.Int64
	// Uncounted counts the queries for names under the zone given to
	// StartZone's uncounted (e.g. the forward stage's loop probes).
	Uncounted atomic.Int64
	// Down, while set, makes the stub drop every query unanswered.
	Down atomic.Bool

	records   []dns.RR
	soa       dns.RR
	uncounted string
}

// StartZone starts a Zone whose negative answers carry soa (a zone-file SOA
// record). Queries for names under uncounted ("" for none) are counted apart.
func StartZone(t testing.TB, soa, uncounted string, records ...string) *Zone {
	t.Helper()
	z := &Zone{soa: mustRR(t, soa), uncounted: uncounted}
	for _, r := range records {
		z.records = append(z.records, mustRR(t, r))
	}
	z.Server = StartServer(t, z)
	return z
}

// ServeDNS implements dns.Handler.
func (z *Zone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if z.Down.Load() {
		return
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative, m.RecursionAvailable = true, true
	if len(r.Question) != 1 {
		z.Queries.Add(1)
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	if z.uncounted != "" && dns.IsSubDomain(z.uncounted, q.Name) {
		z.Uncounted.Add(1)
	} else {
		z.Queries.Add(1)
	}
	known := false
	for _, rr := range z.records {
		if strings.EqualFold(rr.Header().Name, q.Name) {
			known = true
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
	}
	if len(m.Answer) == 0 {
		m.Ns = []dns.RR{dns.Copy(z.soa)}
		if !known {
			m.Rcode = dns.RcodeNameError
		}
	}
	_ = w.WriteMsg(m)
}

func mustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("record %q: %v", s, err)
	}
	return rr
}
