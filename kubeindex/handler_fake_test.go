package kubeindex

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// fakeIndex is a map-backed Index. Lookups allocate nothing, so benchmarks
// measure the handler alone.
type fakeIndex struct {
	synced     atomic.Bool
	serial     uint32
	namespaces map[string]bool
	services   map[[2]string]*ServiceView
	pods       map[string][]netip.Addr
	reverse    map[netip.Addr][]ReverseName
}

var _ Index = (*fakeIndex)(nil)

func newFakeIndex() *fakeIndex {
	f := &fakeIndex{
		serial:     42,
		namespaces: map[string]bool{},
		services:   map[[2]string]*ServiceView{},
		pods:       map[string][]netip.Addr{},
	}
	f.synced.Store(true)
	return f
}

// add adds services (creating their namespaces) and rebuilds the reverse map.
func (f *fakeIndex) add(views ...*ServiceView) *fakeIndex {
	for _, v := range views {
		f.namespaces[v.Namespace] = true
		f.services[[2]string{v.Namespace, v.Name}] = v
	}
	f.reverse = map[netip.Addr][]ReverseName{}
	for _, k := range slices.SortedFunc(func(yield func([2]string) bool) {
		for k := range f.services {
			if !yield(k) {
				return
			}
		}
	}, func(a, b [2]string) int { return strings.Compare(a[0]+"/"+a[1], b[0]+"/"+b[1]) }) {
		v := f.services[k]
		for _, a := range v.ClusterIPs {
			f.reverse[a] = append(f.reverse[a], ReverseName{Namespace: v.Namespace, Service: v.Name})
		}
		for _, ep := range v.Endpoints {
			f.reverse[ep.Addr] = append(f.reverse[ep.Addr], ReverseName{Namespace: v.Namespace, Service: v.Name, Endpoint: true, Label: ep.Label})
		}
	}
	return f
}

func (f *fakeIndex) Synced() bool                { return f.synced.Load() }
func (f *fakeIndex) Serial() uint32              { return f.serial }
func (f *fakeIndex) HasNamespace(ns string) bool { return f.namespaces[ns] }
func (f *fakeIndex) Service(ns, name string) *ServiceView {
	return f.services[[2]string{ns, name}]
}
func (f *fakeIndex) Reverse(addr netip.Addr) []ReverseName { return f.reverse[addr] }
func (f *fakeIndex) HasPod(ns string, addr netip.Addr) bool {
	return slices.Contains(f.pods[ns], addr)
}
func (f *fakeIndex) Walk(fn func(*ServiceView) bool) {
	keys := make([][2]string, 0, len(f.services))
	for k := range f.services {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+"/"+a[1], b[0]+"/"+b[1]) })
	for _, k := range keys {
		if !fn(f.services[k]) {
			return
		}
	}
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

func clusterIP(ns, name string, ips []string, ports []Port, eps ...Endpoint) *ServiceView {
	return &ServiceView{Service: Service{Namespace: ns, Name: name, Kind: KindClusterIP, ClusterIPs: addrs(ips...), Ports: ports}, Endpoints: eps}
}

func headless(ns, name string, eps ...Endpoint) *ServiceView {
	return &ServiceView{Service: Service{Namespace: ns, Name: name, Kind: KindHeadless}, Endpoints: eps}
}

func externalName(ns, name, target string) *ServiceView {
	return &ServiceView{Service: Service{Namespace: ns, Name: name, Kind: KindExternalName, ExternalName: target}}
}

func ep(addr, label string, ports []Port) Endpoint {
	return Endpoint{Addr: netip.MustParseAddr(addr), Label: label, Ports: ports}
}

// fixture is the cluster most tests answer from.
func fixture() *fakeIndex {
	webPorts := []Port{{"http", "tcp", 80}, {"https", "tcp", 443}}
	webEPPorts := []Port{{"http", "tcp", 8080}, {"https", "tcp", 8443}}
	dbPorts := []Port{{"mysql", "tcp", 3306}, {"metrics", "tcp", 9104}}
	f := newFakeIndex().add(
		clusterIP("default", "web", []string{"10.96.0.10"}, webPorts,
			ep("10.1.0.1", "", webEPPorts), ep("10.1.0.2", "web-b", webEPPorts)),
		clusterIP("default", "alias", []string{"10.96.0.50"}, []Port{{"http", "tcp", 80}},
			ep("10.1.0.1", "", webEPPorts)),
		clusterIP("default", "dual", []string{"10.96.0.20", "fd00::20"}, []Port{{"dns", "udp", 53}, {"dns-tcp", "tcp", 53}},
			ep("10.1.0.20", "", nil)),
		clusterIP("default", "v6only", []string{"fd00::30"}, []Port{{"", "tcp", 80}},
			ep("fd00:10::1", "", []Port{{"", "tcp", 8080}})),
		clusterIP("default", "plain", []string{"10.96.0.40"}, []Port{{"", "tcp", 8080}}),
		headless("default", "db",
			ep("10.1.1.1", "db-0", dbPorts), ep("fd00:1::1", "db-0", dbPorts),
			ep("10.1.1.2", "db-1", dbPorts), ep("10.1.1.3", "", dbPorts),
			ep("::5", "", dbPorts), ep("fd00:1::", "", dbPorts)),
		headless("default", "v4head", ep("10.2.0.1", "", []Port{{"web", "tcp", 80}})),
		headless("default", "empty"),
		externalName("default", "ext", "example.com."),
		externalName("default", "extin", "web.default.svc.cluster.local."),
		externalName("default", "extfail", "nxdomain.example."),
		externalName("default", "extnosoa", "nosoa.example."),
		externalName("default", "extsf", "servfail.example."),
		externalName("default", "exterr", "error.example."),
		externalName("default", "loop1", "loop2.default.svc.cluster.local."),
		externalName("default", "loop2", "loop1.default.svc.cluster.local."),
		externalName("default", "extloop", "bounce.example."),
		clusterIP("kube-system", "kube-dns", []string{"10.96.0.53", "fd00::53"},
			[]Port{{"dns", "udp", 53}, {"dns-tcp", "tcp", 53}, {"metrics", "tcp", 9153}}),
	)
	f.namespaces["empty-ns"] = true
	f.pods["default"] = addrs("10.244.0.5", "fd00:244::5")
	return f
}

// handlerConfig is Default() with the test's transfer ACL.
func handlerConfig() Config {
	c := Default()
	c.Transfer.Allow = []string{"127.0.0.0/8"}
	return c
}

// nextTXT is the record the fake next stage answers with.
const nextTXT = `IN TXT "next"`

// fakeNext answers every query with "<qname> 0 IN TXT next" so tests see
// that a query was passed on, and keeps the last message it got.
type fakeNext struct {
	calls atomic.Int32
	last  atomic.Pointer[dns.Msg]
}

func (n *fakeNext) Name() string { return "next" }
func (n *fakeNext) ServeDNS(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	n.calls.Add(1)
	n.last.Store(r)
	m := new(dns.Msg)
	m.SetReply(r)
	m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{"next"}}}
	return dns.RcodeSuccess, w.WriteMsg(m)
}

// fakeChaser answers ExternalName targets outside the zone from a table; a
// target of "bounce.example." resolves back through the chain, like the
// server's Chaser, to exercise loops that leave the index.
type fakeChaser struct {
	chain resolver.Handler
	calls atomic.Int32
}

func (c *fakeChaser) Chase(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	c.calls.Add(1)
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	m := new(dns.Msg)
	m.SetReply(q)
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			panic(err)
		}
		return r
	}
	exampleSOA := rr("example. 60 IN SOA ns.example. admin.example. 1 2 3 4 60")
	switch name {
	case "example.com.":
		switch qtype {
		case dns.TypeA:
			m.Answer = []dns.RR{rr("example.com. 300 IN A 192.0.2.1")}
		case dns.TypeAAAA:
			m.Answer = []dns.RR{rr("example.com. 300 IN AAAA 2001:db8::1")}
		default:
			m.Ns = []dns.RR{rr("example.com. 60 IN SOA ns.example.com. admin.example.com. 1 2 3 4 60")}
		}
	case "nxdomain.example.":
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{exampleSOA}
	case "nosoa.example.":
		m.Rcode = dns.RcodeNameError
	case "servfail.example.":
		m.Rcode = dns.RcodeServerFailure
	case "bounce.example.":
		rec := resolver.NewRecorder(nil)
		b := new(dns.Msg)
		b.SetQuestion("extloop.default.svc.cluster.local.", qtype)
		rcode, err := c.chain.ServeDNS(ctx, rec, b)
		if err != nil || !resolver.ClientWrote(rcode) {
			m.Rcode = rcode
			return m, nil
		}
		m.Answer = append([]dns.RR{rr("bounce.example. 60 IN CNAME extloop.default.svc.cluster.local.")}, rec.Msg.Answer...)
		m.Rcode = rec.Msg.Rcode
	default:
		return nil, errors.New("fake upstream unreachable")
	}
	return m, nil
}

// harness is a handler built by Wrap over a fake index, with a fake next and
// a fake Chaser.
type harness struct {
	idx    *fakeIndex
	next   *fakeNext
	chaser *fakeChaser
	h      resolver.Handler
}

func newHarness(t testing.TB, cfg Config, idx *fakeIndex) *harness {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	set, err := cfg.settings()
	if err != nil {
		t.Fatalf("settings: %v", err)
	}
	e := newEngine(set, idx, nil)
	hs := &harness{idx: idx, next: &fakeNext{}}
	hs.h = e.wrap(hs.next)
	hs.chaser = &fakeChaser{chain: hs.h}
	e.chaser.Store(&chaserRef{c: hs.chaser})
	return hs
}

// query sends m as from a UDP client on loopback and returns the reply the
// front end would send: the written one, or an empty one with the returned
// rcode when the handler wrote nothing.
func (hs *harness) query(t testing.TB, m *dns.Msg) (*dns.Msg, bool) {
	t.Helper()
	before := hs.next.calls.Load()
	rec := resolver.NewRecorder(nil)
	rcode, err := hs.h.ServeDNS(context.Background(), rec, m)
	passed := hs.next.calls.Load() != before
	if !resolver.ClientWrote(rcode) {
		if rec.Msg != nil {
			t.Errorf("%s: returned %s but wrote a reply", m.Question[0].Name, dns.RcodeToString[rcode])
		}
		e := new(dns.Msg)
		e.SetRcode(m, rcode)
		return e, passed
	}
	if err != nil {
		t.Errorf("%s: error %v with rcode %s", m.Question[0].Name, err, dns.RcodeToString[rcode])
	}
	if rec.Msg == nil {
		t.Fatalf("%s: rcode %s but nothing written", m.Question[0].Name, dns.RcodeToString[rcode])
	}
	if rec.Msg.Id != m.Id || !rec.Msg.Response || len(rec.Msg.Question) != 1 || rec.Msg.Question[0] != m.Question[0] {
		t.Errorf("%s: reply header or question does not match the query: %v", m.Question[0].Name, rec.Msg.MsgHdr)
	}
	if _, err := rec.Msg.Copy().Pack(); err != nil {
		t.Errorf("%s: reply does not pack: %v", m.Question[0].Name, err)
	}
	if rec.Msg.Rcode != rcode {
		t.Errorf("%s: returned rcode %s, wrote %s", m.Question[0].Name, dns.RcodeToString[rcode], dns.RcodeToString[rec.Msg.Rcode])
	}
	return rec.Msg, passed
}

// run checks every case. Replies written by the index must be authoritative;
// replies of the next stage are recognized by its TXT record.
func (hs *harness) run(t *testing.T, cases []resolvertest.Case) {
	t.Helper()
	for _, c := range cases {
		got, passed := hs.query(t, c.Msg())
		wantPassed := len(c.Answer) == 1 && strings.HasSuffix(c.Answer[0], nextTXT)
		if passed != wantPassed {
			t.Errorf("%s: passed to next %v, want %v", c.Name+" "+c.Qname, passed, wantPassed)
		}
		if got.Rcode != dns.RcodeServerFailure && got.Rcode != dns.RcodeRefused {
			c.CheckAA, c.AA = true, !passed
		}
		c.Check(t, got)
	}
}
