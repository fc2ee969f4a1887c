package server

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/dns"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/clusterdns/clusterdns/kubeindex/clientsetapi"
	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// packWriter packs each reply as the front end does and keeps the bytes.
type packWriter struct {
	*resolver.Recorder
	out []byte
}

func (w *packWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	w.out = b
	return err
}

// TestKubernetesInline: cluster-zone names are answered inline through the
// compiled chain, with the cache in front (it passes the zone it skips on)
// or without it, and over real sockets the answers the UDP reader gives
// inline are those a worker gives over TCP. Names whose answer needs the
// rest of the chain (an ExternalName target upstream) and names outside the
// zone are left to workers and still answered right.
func TestKubernetesInline(t *testing.T) {
	for _, tc := range []struct{ name, extra string }{
		{"cache", "kubernetes: {zone: cluster.local, ttl: 5}\n"},
		{"no-cache", "kubernetes: {zone: cluster.local, ttl: 5}\ncache: {enabled: false}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startStub(t, "example.", "alias.example. 300 IN A 192.0.2.1", "www.example. 300 IN A 192.0.2.2")
			s, _ := startServer(t, testConfig(t, up.Addr, tc.extra), Options{KubeClient: clientsetapi.New(fake.NewClientset(fuzzObjects()...))})
			addr := dnsAddr(t, s)
			eventually(t, "the index", func() bool {
				r, err := exchange("udp", addr, resolvertest.Query("web.default.svc.cluster.local.", dns.TypeA), timeoutShort)
				return err == nil && len(r.Answer) == 1
			})
			chain, ok := s.current.Load().chain.(resolver.InlineHandler)
			if !ok {
				t.Fatalf("chain head %T does not serve inline", s.current.Load().chain)
			}
			for _, c := range []struct {
				name   string
				qtype  uint16
				inline bool
				want   resolvertest.Case // for negative answers (soa) only the rcode
				soa    bool              // a negative answer with the zone's SOA
			}{
				{"web.default.svc.cluster.local.", dns.TypeA, true, resolvertest.Case{Answer: []string{"web.default.svc.cluster.local. 5 IN A 10.0.0.10"}}, false},
				{"Web.Default.svc.cluster.local.", dns.TypeAAAA, true, resolvertest.Case{Answer: []string{"Web.Default.svc.cluster.local. 5 IN AAAA fd00::10"}}, false},
				{"db.default.svc.cluster.local.", dns.TypeA, true, resolvertest.Case{Answer: []string{
					"db.default.svc.cluster.local. 5 IN A 10.1.1.1", "db.default.svc.cluster.local. 5 IN A 10.1.1.2",
					"db.default.svc.cluster.local. 5 IN A 10.1.1.3", "db.default.svc.cluster.local. 5 IN A 10.1.1.4"}}, false},
				{"db-0.db.default.svc.cluster.local.", dns.TypeAAAA, true, resolvertest.Case{Answer: []string{"db-0.db.default.svc.cluster.local. 5 IN AAAA fd00:1::1"}}, false},
				{"_http._tcp.web.default.svc.cluster.local.", dns.TypeSRV, true, resolvertest.Case{
					Answer: []string{"_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local."},
					Extra:  []string{"web.default.svc.cluster.local. 5 IN A 10.0.0.10", "web.default.svc.cluster.local. 5 IN AAAA fd00::10"}}, false},
				{"10.0.0.10.in-addr.arpa.", dns.TypePTR, true, resolvertest.Case{Answer: []string{"10.0.0.10.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local."}}, false},
				{"www.example.default.svc.cluster.local.", dns.TypeA, true, resolvertest.Case{Rcode: dns.RcodeNameError}, true},
				{"web.default.svc.cluster.local.", dns.TypeTXT, true, resolvertest.Case{}, true},
				{"ext.default.svc.cluster.local.", dns.TypeCNAME, true, resolvertest.Case{Answer: []string{"ext.default.svc.cluster.local. 5 IN CNAME alias.example."}}, false},
				{"ext.default.svc.cluster.local.", dns.TypeA, false, resolvertest.Case{Answer: []string{
					"ext.default.svc.cluster.local. 5 IN CNAME alias.example.", "alias.example. * IN A 192.0.2.1"}}, false},
				{"www.example.", dns.TypeA, false, resolvertest.Case{Answer: []string{"www.example. * IN A 192.0.2.2"}}, false},
			} {
				label := c.name + " " + dns.TypeToString[c.qtype]
				w := &packWriter{Recorder: resolver.NewRecorder(nil)}
				served, _, err := chain.ServeInline(context.Background(), w, resolvertest.Query(c.name, c.qtype))
				if err != nil || served != c.inline || served != (w.out != nil) {
					t.Errorf("%s: served inline %v (wrote %v, err %v), want %v", label, served, w.out != nil, err, c.inline)
				}
				c.want.Qname, c.want.Qtype = c.name, c.qtype
				udp := resolvertest.Exchange(t, "udp", addr, c.want.Msg())
				if c.soa {
					if udp.Rcode != c.want.Rcode || len(udp.Answer) != 0 || len(udp.Ns) != 1 || udp.Ns[0].Header().Rrtype != dns.TypeSOA {
						t.Errorf("%s: want %s with the zone's SOA, got\n%v", label, dns.RcodeToString[c.want.Rcode], udp)
					}
				} else {
					c.want.Check(t, udp)
				}
				if !c.inline {
					continue // forwarded: the cache ages the TTLs between the two
				}
				tcp := resolvertest.Exchange(t, "tcp", addr, c.want.Msg())
				udp.Id, tcp.Id = 0, 0
				if udp.String() != tcp.String() {
					t.Errorf("%s: the UDP reply differs from the TCP one:\n%v\n%v", label, udp, tcp)
				}
			}
		})
	}
}

// timeoutShort bounds one probe of eventually.
const timeoutShort = 500 * time.Millisecond
