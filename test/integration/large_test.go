package integration

import (
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
	"github.com/clusterdns/clusterdns/test/cluster"
)

// rawUDP sends m in one datagram and returns the reply with its size on the
// wire, reading into a 64 KiB buffer so nothing the server sends is cut off
// by the client.
func rawUDP(t *testing.T, addr string, m *dns.Msg) (*dns.Msg, int) {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(queryTimeout)); err != nil {
		t.Fatal(err)
	}
	out, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(out); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, dns.MaxMsgSize)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil {
		t.Fatalf("unpack %d-byte reply: %v", n, err)
	}
	// Whole records only: the header counts are the records that parsed.
	counts := [3]int{int(binary.BigEndian.Uint16(buf[6:])), int(binary.BigEndian.Uint16(buf[8:])), int(binary.BigEndian.Uint16(buf[10:]))}
	if got := [3]int{len(r.Answer), len(r.Ns), len(r.Extra)}; counts != got {
		t.Errorf("header counts %v but %v records parsed: a record was cut", counts, got)
	}
	return r, n
}

// TestLargeAnswer queries a headless service with 200 endpoints: over UDP
// the reply is cut at a record boundary to the client's size with TC set,
// over TCP it holds all 200 addresses.
func TestLargeAnswer(t *testing.T) {
	t.Parallel()
	c := cluster.Start(t)
	up := startStub(t)
	ns := c.NewNamespace(t, "big")
	http := cluster.Port{Name: "http", Port: 80}
	c.CreateService(t, cluster.HeadlessService(ns, "big", http))
	const n = 200
	name := svcName("big", ns)
	eps := make([]cluster.Endpoint, n)
	all := make([]string, n) // the addresses, 10.247.0.1 to 10.247.0.200
	want := make([]string, n)
	for i := range n {
		all[i] = fmt.Sprintf("10.247.%d.%d", (i+1)/256, (i+1)%256)
		eps[i] = cluster.Endpoint{Addresses: []string{all[i]}}
		want[i] = name + " 5 IN A " + all[i]
	}
	c.CreateEndpointSlice(t, cluster.EndpointSlice(ns, "big", "big-1", discoveryv1.AddressTypeIPv4, []cluster.Port{http}, eps...))
	srv := startServer(t, configYAML(up.Addr, c.Kubeconfig))

	full := answerCase(name, dns.TypeA, want...)
	waitForOn(t, "tcp", srv.addr, full, time.Now(), 10*time.Second)
	r, err := exchange("tcp", srv.addr, full.Msg())
	if err != nil {
		t.Fatal(err)
	}
	full.Check(t, r)
	if r.Truncated {
		t.Error("TCP reply has TC set")
	}
	t.Logf("FIGURE TCP: %d A records, %d bytes", len(r.Answer), r.Len())

	for _, tc := range []struct {
		name string
		edns uint16 // 0: no EDNS, 512-byte limit
		fits bool   // the whole answer fits the client's size
	}{{"no EDNS", 0, false}, {"EDNS 1232", 1232, false}, {"EDNS 4096", 4096, true}} {
		q := resolvertest.Query(name, dns.TypeA)
		limit := 512
		if tc.edns > 0 {
			q.SetEdns0(tc.edns, false)
			limit = int(tc.edns)
		}
		r, size := rawUDP(t, srv.addr, q)
		t.Logf("FIGURE UDP %s: %d bytes, TC=%v, %d of %d A records", tc.name, size, r.Truncated, len(r.Answer), n)
		if r.Rcode != dns.RcodeSuccess || size > limit {
			t.Errorf("UDP %s: rcode %s, %d bytes; want NOERROR within %d bytes", tc.name, dns.RcodeToString[r.Rcode], size, limit)
		}
		switch {
		case tc.fits && (r.Truncated || len(r.Answer) != n):
			t.Errorf("UDP %s: TC=%v, %d records; want all %d without TC", tc.name, r.Truncated, len(r.Answer), n)
		case !tc.fits && (!r.Truncated || len(r.Answer) == 0 || len(r.Answer) >= n):
			t.Errorf("UDP %s: TC=%v, %d records; want TC and some but not all of %d", tc.name, r.Truncated, len(r.Answer), n)
		}
		if (r.IsEdns0() != nil) != (tc.edns > 0) {
			t.Errorf("UDP %s: reply OPT %v, want one exactly when the query had one", tc.name, r.IsEdns0())
		}
		seen := map[string]bool{}
		for _, rr := range r.Answer {
			a, ok := rr.(*dns.A)
			if !ok || !strings.EqualFold(a.Hdr.Name, name) || !slices.Contains(all, a.A.String()) || seen[a.A.String()] {
				t.Errorf("UDP %s: unexpected or repeated record %s", tc.name, rr)
				continue
			}
			seen[a.A.String()] = true
		}
	}

	t.Run("dig", func(t *testing.T) {
		digPath(t)
		udp := parseDig(t, dig(t, srv.addr, "+notcp", "+ignore", "+noedns", name, "A"))
		if !udp.Truncated || len(udp.Answer) >= n {
			t.Errorf("dig +notcp +ignore +noedns: tc=%v, %d records; want tc and fewer than %d", udp.Truncated, len(udp.Answer), n)
		}
		// Without +ignore dig does what resolvers do: retry over TCP.
		out := dig(t, srv.addr, "+notcp", name, "A")
		if got := parseDig(t, out); got.Truncated || len(got.Answer) != n || !strings.Contains(out, "retrying in TCP mode") {
			t.Errorf("dig +notcp: tc=%v, %d records, retried over TCP: %v; want all %d after a TCP retry",
				got.Truncated, len(got.Answer), strings.Contains(out, "retrying in TCP mode"), n)
		}
		short := strings.Fields(dig(t, srv.addr, "+tcp", "+short", name, "A"))
		slices.Sort(short)
		sorted := slices.Sorted(slices.Values(all))
		if !slices.Equal(short, sorted) {
			t.Errorf("dig +tcp +short: %d addresses, want the %d endpoints", len(short), n)
		}
	})
}
