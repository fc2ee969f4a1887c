package frontend

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

func TestSockaddrAddrPort(t *testing.T) {
	v4 := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: [4]byte{192, 0, 2, 7}}
	*(*[2]byte)(unsafe.Pointer(&v4.Port)) = [2]byte{0x12, 0x34}
	v6 := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: netip.MustParseAddr("2001:db8::5").As16()}
	*(*[2]byte)(unsafe.Pointer(&v6.Port)) = [2]byte{0, 53}
	mapped := v6
	mapped.Addr = netip.MustParseAddr("::ffff:10.0.0.1").As16()
	scoped := v6
	scoped.Addr = netip.MustParseAddr("fe80::1").As16()
	scoped.Scope_id = 3
	var v4as6 unix.RawSockaddrInet6
	*(*unix.RawSockaddrInet4)(unsafe.Pointer(&v4as6)) = v4
	for _, c := range []struct {
		sa   *unix.RawSockaddrInet6
		want string
	}{
		{&v4as6, "192.0.2.7:4660"},
		{&v6, "[2001:db8::5]:53"},
		{&mapped, "[::ffff:10.0.0.1]:53"},
		{&scoped, "[fe80::1%3]:53"},
		{&unix.RawSockaddrInet6{}, "invalid AddrPort"},
	} {
		if got := sockaddrAddrPort(c.sa).String(); got != c.want {
			t.Errorf("got %s, want %s", got, c.want)
		}
	}
}

// TestRawSenderPeer: the sockaddr a reply is sent to is the peer's, in the
// socket's family (IPv4 peers of a dual-stack socket as mapped addresses),
// and reads back as the same peer.
func TestRawSenderPeer(t *testing.T) {
	for _, c := range []struct {
		family     int
		peer, want string
	}{
		{unix.AF_INET, "192.0.2.7:4660", "192.0.2.7:4660"},
		{unix.AF_INET, "[::ffff:192.0.2.7]:53", "192.0.2.7:53"},
		{unix.AF_INET, "[2001:db8::1]:53", ""},
		{unix.AF_INET6, "[2001:db8::5]:53", "[2001:db8::5]:53"},
		{unix.AF_INET6, "192.0.2.7:53", "[::ffff:192.0.2.7]:53"},
		{unix.AF_INET6, "[fe80::1%3]:53", "[fe80::1%3]:53"},
	} {
		s := &rawSender{family: c.family}
		if ok := s.setPeer(netip.MustParseAddrPort(c.peer)); ok != (c.want != "") {
			t.Errorf("%s on family %d: setPeer %v", c.peer, c.family, ok)
			continue
		}
		if c.want == "" {
			continue
		}
		if got := sockaddrAddrPort(&s.sa).String(); got != c.want {
			t.Errorf("%s on family %d: sent to %s, want %s", c.peer, c.family, got, c.want)
		}
	}
}

// TestReplyBatch: the replies of a batch reach their clients in order, a
// reply the kernel refuses (port 0) is logged and skipped without holding
// up the rest, and every query of the batch is ended (latency observed).
func TestReplyBatch(t *testing.T) {
	var logs resolvertest.LogBuffer
	m := NewMetrics(nil)
	f, err := New(Config{Listen: []string{"127.0.0.1:0"}}, resolver.HandlerFunc{N: "none"}, Options{Logger: logs.Logger(), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	raw, err := newRawSender(srv)
	if err != nil {
		t.Fatal(err)
	}
	b := newReplyBatch(raw, f.log)
	s := &udpSocket{f: f, c: srv, laddr: srv.LocalAddr(), raw: raw, out: b}
	var clients []*net.UDPConn
	var peers []netip.AddrPort
	for range 2 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
		peers = append(peers, c.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	send := []struct {
		peer netip.AddrPort
		msg  string
	}{
		{peers[0], "first"},
		{netip.MustParseAddrPort("127.0.0.1:0"), "refused"},
		{peers[1], "second"},
		{peers[0], "third"},
	}
	for _, x := range send {
		q := f.getQuery()
		q.f, q.tr, q.proto, q.inReader = f, s, protoUDP, true
		q.setPeer(x.peer)
		q.start = time.Now()
		if !b.add(q, []byte(x.msg)) || !q.queued {
			t.Fatalf("%s not queued", x.msg)
		}
	}
	b.flush()
	if b.n != 0 {
		t.Errorf("%d replies still held", b.n)
	}
	buf := make([]byte, 64)
	for _, want := range []struct {
		c   int
		msg string
	}{{0, "first"}, {0, "third"}, {1, "second"}} {
		clients[want.c].SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := clients[want.c].Read(buf)
		if err != nil || string(buf[:n]) != want.msg {
			t.Errorf("client %d: got %q (%v), want %q", want.c, buf[:n], err, want.msg)
		}
	}
	if !strings.Contains(logs.String(), "127.0.0.1:0") || !strings.Contains(logs.String(), "sendmmsg") {
		t.Errorf("refused reply not logged:\n%s", logs.String())
	}
	var pm dto.Metric
	if err := m.duration.Write(&pm); err != nil {
		t.Fatal(err)
	}
	if got := pm.GetHistogram().GetSampleCount(); got != uint64(len(send)) {
		t.Errorf("latency observed %d times, want %d", got, len(send))
	}
}
