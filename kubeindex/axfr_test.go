package kubeindex

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// streamWriter records every message written, as a TCP or UDP client at
// remote would receive them.
type streamWriter struct {
	resolver.Recorder
	remote net.Addr
	msgs   []*dns.Msg
}

func newStreamWriter(remote net.Addr) *streamWriter {
	return &streamWriter{Recorder: *resolver.NewRecorder(nil), remote: remote}
}

func (s *streamWriter) RemoteAddr() net.Addr { return s.remote }
func (s *streamWriter) WriteMsg(m *dns.Msg) error {
	s.msgs = append(s.msgs, m)
	return nil
}

var (
	tcpLoopback = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}
	tcpOutside  = &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 5353}
	udpLoopback = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}
)

func axfrIndex() *fakeIndex {
	mysql := []Port{{"mysql", "tcp", 3306}}
	return newFakeIndex().add(
		clusterIP("default", "web", []string{"10.96.0.10"}, []Port{{"http", "tcp", 80}}, ep("10.1.0.1", "", nil)),
		headless("default", "db", ep("10.1.1.1", "db-0", mysql), ep("fd00:1::1", "db-0", mysql)),
		headless("default", "empty"),
		externalName("default", "ext", "example.com."),
	)
}

// transfer runs an AXFR for zone from remote and returns the rcode and the
// messages written.
func transfer(t *testing.T, hs *harness, zone string, qtype uint16, remote net.Addr) (int, []*dns.Msg) {
	t.Helper()
	w := newStreamWriter(remote)
	rcode, err := hs.h.ServeDNS(context.Background(), w, resolvertest.Query(zone, qtype))
	if err != nil {
		t.Fatalf("transfer: %v", err)
	}
	if !resolver.ClientWrote(rcode) && len(w.msgs) > 0 {
		t.Fatalf("returned %s but wrote %d messages", dns.RcodeToString[rcode], len(w.msgs))
	}
	return rcode, w.msgs
}

// checkStream checks the SOA framing and returns every record in order.
func checkStream(t *testing.T, msgs []*dns.Msg) []dns.RR {
	t.Helper()
	var all []dns.RR
	for i, m := range msgs {
		if !m.Authoritative || m.Rcode != dns.RcodeSuccess || len(m.Question) != 1 {
			t.Errorf("message %d: AA %v rcode %s questions %d", i, m.Authoritative, dns.RcodeToString[m.Rcode], len(m.Question))
		}
		all = append(all, m.Answer...)
	}
	if len(all) < 2 || all[0].Header().Rrtype != dns.TypeSOA || all[len(all)-1].Header().Rrtype != dns.TypeSOA {
		t.Fatalf("transfer not framed by SOA records:\n%s", resolvertest.RRs(all))
	}
	for _, rr := range all[1 : len(all)-1] {
		if rr.Header().Rrtype == dns.TypeSOA {
			t.Errorf("SOA inside the transfer: %s", rr)
		}
	}
	return all
}

// TestTransfer covers R17.
func TestTransfer(t *testing.T) {
	hs := newHarness(t, handlerConfig(), axfrIndex())
	rcode, msgs := transfer(t, hs, "Cluster.Local.", dns.TypeAXFR, tcpLoopback)
	if rcode != dns.RcodeSuccess || len(msgs) != 1 {
		t.Fatalf("allowed AXFR: rcode %s, %d messages", dns.RcodeToString[rcode], len(msgs))
	}
	all := checkStream(t, msgs)
	Case{Name: "AXFR", Answer: []string{
		soa, soa,
		"cluster.local. 5 IN NS kube-dns.kube-system.svc.cluster.local.",
		`dns-version.cluster.local. 28800 IN TXT "1.1.0"`,
		web + " 5 IN A 10.96.0.10",
		web + " 5 IN SRV 0 100 80 " + web,
		"_http._tcp." + web + " 5 IN SRV 0 100 80 " + web,
		"10-1-0-1." + web + " 5 IN A 10.1.0.1",
		db + " 5 IN A 10.1.1.1",
		db + " 5 IN AAAA fd00:1::1",
		db + " 5 IN SRV 0 100 3306 db-0." + db,
		"_mysql._tcp." + db + " 5 IN SRV 0 100 3306 db-0." + db,
		"db-0." + db + " 5 IN A 10.1.1.1",
		"db-0." + db + " 5 IN AAAA fd00:1::1",
		"ext.default.svc.cluster.local. 5 IN CNAME example.com.",
	}}.Check(t, &dns.Msg{Answer: all})

	for _, tc := range []struct {
		name   string
		zone   string
		qtype  uint16
		remote net.Addr
		want   int
	}{
		{"IXFR is a full transfer", "cluster.local.", dns.TypeIXFR, tcpLoopback, dns.RcodeSuccess},
		{"client not allowed", "cluster.local.", dns.TypeAXFR, tcpOutside, dns.RcodeRefused},
		{"over UDP", "cluster.local.", dns.TypeAXFR, udpLoopback, dns.RcodeRefused},
		{"not the zone apex", "svc.cluster.local.", dns.TypeAXFR, tcpLoopback, dns.RcodeRefused},
	} {
		if rcode, _ := transfer(t, hs, tc.zone, tc.qtype, tc.remote); rcode != tc.want {
			t.Errorf("%s: rcode %s, want %s", tc.name, dns.RcodeToString[rcode], dns.RcodeToString[tc.want])
		}
	}
	cfg := handlerConfig()
	cfg.Transfer.Allow = nil
	if rcode, _ := transfer(t, newHarness(t, cfg, axfrIndex()), "cluster.local.", dns.TypeAXFR, tcpLoopback); rcode != dns.RcodeRefused {
		t.Errorf("no ACL: rcode %s, want REFUSED", dns.RcodeToString[rcode])
	}
	idx := axfrIndex()
	idx.synced.Store(false)
	if rcode, _ := transfer(t, newHarness(t, handlerConfig(), idx), "cluster.local.", dns.TypeAXFR, tcpLoopback); rcode != dns.RcodeServerFailure {
		t.Errorf("unsynced: rcode %s, want SERVFAIL", dns.RcodeToString[rcode])
	}
}

// TestTransferLarge: a big zone is split over several messages, each within
// the TCP message limit, and a real client reads it over TCP.
func TestTransferLarge(t *testing.T) {
	idx := newFakeIndex()
	const services = 1500
	var views []*ServiceView
	for i := range services {
		views = append(views, clusterIP("ns", fmt.Sprintf("svc-%04d", i),
			[]string{fmt.Sprintf("10.96.%d.%d", i/256, i%256)}, []Port{{"http", "tcp", 80}}))
	}
	idx.add(views...)
	hs := newHarness(t, handlerConfig(), idx)
	_, msgs := transfer(t, hs, "cluster.local.", dns.TypeAXFR, tcpLoopback)
	if len(msgs) < 2 {
		t.Fatalf("%d messages, want several", len(msgs))
	}
	for i, m := range msgs {
		if b, err := m.Pack(); err != nil || len(b) > dns.MaxMsgSize {
			t.Errorf("message %d: %d bytes, %v", i, len(b), err)
		}
	}
	// SOA x2, NS, TXT, then A + SRV + _http._tcp SRV per service.
	if all := checkStream(t, msgs); len(all) != 4+3*services {
		t.Errorf("%d records, want %d", len(all), 4+3*services)
	}

	srv := resolvertest.StartServer(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		rcode, _ := hs.h.ServeDNS(context.Background(), w, r)
		if !resolver.ClientWrote(rcode) {
			m := new(dns.Msg)
			m.SetRcode(r, rcode)
			_ = w.WriteMsg(m)
		}
	}))
	tr := &dns.Transfer{}
	q := new(dns.Msg)
	q.SetAxfr("cluster.local.")
	env, err := tr.In(q, srv.Addr)
	if err != nil {
		t.Fatalf("transfer over TCP: %v", err)
	}
	n, envelopes := 0, 0
	for e := range env {
		if e.Error != nil {
			t.Fatalf("envelope: %v", e.Error)
		}
		n += len(e.RR)
		envelopes++
	}
	if n != 4+3*services || envelopes < 2 {
		t.Errorf("TCP transfer: %d records in %d envelopes, want %d in several", n, envelopes, 4+3*services)
	}
	c := &dns.Client{Net: "udp"}
	if r, _, err := c.Exchange(q, srv.Addr); err != nil || r.Rcode != dns.RcodeRefused {
		t.Errorf("AXFR over UDP: %v %v, want REFUSED", r, err)
	}
}
