package server

import (
	"net"
	"testing"

	"github.com/miekg/dns"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/clusterdns/clusterdns/kubeindex/clientsetapi"
)

// BenchmarkServer measures the whole server path, read to write: a packed
// query written to a real UDP socket on loopback, through the front end,
// cache, kubeindex (over a fake clientset) and forward (to a stub), and the
// reply read back. The client side reuses its buffers and allocates nothing,
// so allocs/op are the server's. Speed targets live here and in test/bench,
// never in unit tests.
func BenchmarkServer(b *testing.B) {
	up := startStub(b, "example.", "www.example. 300 IN A 192.0.2.1")
	cfg := testConfigHTTP(b, up.Addr, `{metrics: "", health: "", ready: ""}`, `  loopCheck: 0s
limits: {udpSockets: 1}
kubernetes: {}
`)
	s, _ := startServer(b, cfg, Options{KubeClient: clientsetapi.New(fake.NewClientset(fuzzObjects()...))})
	addr := dnsAddr(b, s)
	for _, bc := range []struct {
		name  string
		qname string
		qtype uint16
		rcode int
	}{
		{"cluster/ClusterIP-A", "web.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess},
		{"cluster/headless-A", "db.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess},
		{"cluster/SRV", "_http._tcp.web.default.svc.cluster.local.", dns.TypeSRV, dns.RcodeSuccess},
		{"cluster/PTR", "10.0.0.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess},
		{"cluster/ndots-junk-NXDOMAIN", "www.example.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError},
		{"cache-hit", "www.example.", dns.TypeA, dns.RcodeSuccess},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := new(dns.Msg)
			q.SetQuestion(bc.qname, bc.qtype)
			q.SetEdns0(1232, false)
			pkt, err := q.Pack()
			if err != nil {
				b.Fatal(err)
			}
			conn, err := net.Dial("udp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			buf := make([]byte, 4096)
			roundTrip := func() []byte {
				if _, err := conn.Write(pkt); err != nil {
					b.Fatal(err)
				}
				n, err := conn.Read(buf)
				if err != nil {
					b.Fatal(err)
				}
				return buf[:n]
			}
			// one checked round trip first: it also fills the cache
			r := new(dns.Msg)
			if err := r.Unpack(roundTrip()); err != nil || r.Rcode != bc.rcode {
				b.Fatalf("%s: rcode %v (err %v), want %s", bc.qname, r.Rcode, err, dns.RcodeToString[bc.rcode])
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				roundTrip()
			}
		})
	}
}
