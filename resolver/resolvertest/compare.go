package resolvertest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// AnyTTL in a want record's TTL field matches any TTL ("x. 4294967295 IN A ..."
// is awkward to write, so use the TTL placeholder "*" instead: "x. * IN A ...").
const AnyTTL = "*"

// Case is one row of a DNS table test. Records are zone-file strings such as
// "web.default.svc.cluster.local. 5 IN A 10.0.0.1"; a TTL of "*" matches any.
// Extra excludes the OPT record.
type Case struct {
	Name   string
	Qname  string
	Qtype  uint16
	Rcode  int
	AA     bool // checked only when CheckAA is set
	Answer []string
	Ns     []string
	Extra  []string

	CheckAA bool
}

// Msg returns the query for c.
func (c Case) Msg() *dns.Msg { return Query(c.Qname, c.Qtype) }

// Check compares a reply with c: rcode, and every section as a sorted set of
// records. It reports all differences at once.
func (c Case) Check(t testing.TB, got *dns.Msg) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: no reply", c.label())
	}
	if got.Rcode != c.Rcode {
		t.Errorf("%s: rcode %s, want %s", c.label(), dns.RcodeToString[got.Rcode], dns.RcodeToString[c.Rcode])
	}
	if c.CheckAA && got.Authoritative != c.AA {
		t.Errorf("%s: AA %v, want %v", c.label(), got.Authoritative, c.AA)
	}
	checkSection(t, c.label()+" answer", got.Answer, c.Answer)
	checkSection(t, c.label()+" authority", got.Ns, c.Ns)
	var extra []dns.RR
	for _, rr := range got.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	checkSection(t, c.label()+" additional", extra, c.Extra)
}

func (c Case) label() string {
	if c.Name != "" {
		return c.Name
	}
	return c.Qname + " " + dns.TypeToString[c.Qtype]
}

func checkSection(t testing.TB, what string, got []dns.RR, want []string) {
	t.Helper()
	g := make([]string, len(got))
	for i, rr := range got {
		g[i] = normalize(rr.String())
	}
	w := make([]string, len(want))
	for i, s := range want {
		w[i] = normalizeWant(t, s)
	}
	slices.Sort(g)
	slices.Sort(w)
	if len(g) != len(w) {
		t.Errorf("%s: %d records, want %d\n got: %s\nwant: %s", what, len(g), len(w), strings.Join(g, "\n      "), strings.Join(w, "\n      "))
		return
	}
	for i := range g {
		if !match(g[i], w[i]) {
			t.Errorf("%s: record %d\n got: %s\nwant: %s", what, i, g[i], w[i])
		}
	}
}

// normalize turns a record into "owner ttl class type rdata" with single
// spaces and a lower-case owner, the form want strings are compared in.
func normalize(s string) string {
	f := strings.Fields(s)
	if len(f) > 0 {
		f[0] = strings.ToLower(f[0])
	}
	return strings.Join(f, " ")
}

func normalizeWant(t testing.TB, s string) string {
	t.Helper()
	f := strings.Fields(s)
	if len(f) < 4 {
		t.Fatalf("want record %q is not \"owner ttl class type rdata\"", s)
	}
	ttl := f[1]
	if ttl != AnyTTL {
		// parse through miekg/dns so rdata is printed the way replies are
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("want record %q: %v", s, err)
		}
		return normalize(rr.String())
	}
	f[1] = "0"
	rr, err := dns.NewRR(strings.Join(f, " "))
	if err != nil {
		t.Fatalf("want record %q: %v", s, err)
	}
	n := strings.Fields(normalize(rr.String()))
	n[1] = AnyTTL
	return strings.Join(n, " ")
}

func match(got, want string) bool {
	if got == want {
		return true
	}
	g, w := strings.Fields(got), strings.Fields(want)
	if len(g) != len(w) || len(w) < 2 || w[1] != AnyTTL {
		return false
	}
	g[1] = AnyTTL
	return slices.Equal(g, w)
}

// RRs formats records as zone-file strings, for failure messages.
func RRs(rrs []dns.RR) string {
	var b strings.Builder
	for _, rr := range rrs {
		fmt.Fprintln(&b, rr.String())
	}
	return b.String()
}
