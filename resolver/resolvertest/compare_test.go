package resolvertest

import (
	"testing"

	"github.com/miekg/dns"
)

func TestCheckMatchesSortedWithWildcard(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("Web.default.svc.cluster.local.", dns.TypeA)
	m.Rcode = dns.RcodeSuccess
	for _, s := range []string{
		"web.default.svc.cluster.local. 5 IN A 10.0.0.2",
		"web.default.svc.cluster.local. 3 IN A 10.0.0.1",
	} {
		rr, _ := dns.NewRR(s)
		m.Answer = append(m.Answer, rr)
	}
	Case{Qname: "web.default.svc.cluster.local.", Qtype: dns.TypeA, Answer: []string{
		"web.default.svc.cluster.local. * IN A 10.0.0.1",
		"web.default.svc.cluster.local.   5   IN A 10.0.0.2",
	}}.Check(t, m)
}

func TestCheckReportsDifferences(t *testing.T) {
	m := new(dns.Msg)
	rr, _ := dns.NewRR("a. 5 IN A 10.0.0.1")
	m.Answer = []dns.RR{rr}
	ft := &fakeT{TB: t}
	Case{Qname: "a.", Qtype: dns.TypeA, Answer: []string{"a. 6 IN A 10.0.0.1"}}.Check(ft, m)
	if !ft.failed {
		t.Fatal("a TTL mismatch was not reported")
	}
	ft = &fakeT{TB: t}
	Case{Qname: "a.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Answer: []string{"a. * IN A 10.0.0.1"}}.Check(ft, m)
	if !ft.failed {
		t.Fatal("an rcode mismatch was not reported")
	}
}

type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Errorf(string, ...any) { f.failed = true }
func (f *fakeT) Helper()               {}
