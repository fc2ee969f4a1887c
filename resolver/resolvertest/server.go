package resolvertest

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Server is a UDP and TCP DNS server on 127.0.0.1 with one port for both.
type Server struct {
	Addr string // "127.0.0.1:port"
	udp  *dns.Server
	tcp  *dns.Server
}

// StartServer serves h over UDP and TCP on the same loopback port and stops
// both when the test ends. It never touches the global dns mux.
func StartServer(t testing.TB, h dns.Handler) *Server {
	t.Helper()
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen udp: %v", err)
		}
		addr := pc.LocalAddr().String()
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			pc.Close()
			if attempt < 10 {
				continue // the TCP side of that port was taken; try another
			}
			t.Fatalf("listen tcp %s: %v", addr, err)
		}
		s := &Server{Addr: addr,
			udp: &dns.Server{PacketConn: pc, Handler: h},
			tcp: &dns.Server{Listener: ln, Handler: h},
		}
		start(t, s.udp)
		start(t, s.tcp)
		t.Cleanup(s.Close)
		return s
	}
}

func start(t testing.TB, srv *dns.Server) {
	t.Helper()
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	errc := make(chan error, 1)
	go func() { errc <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-errc:
		t.Fatalf("dns server did not start: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("dns server did not start within 5s")
	}
}

// Close stops both listeners; it is safe to call more than once.
func (s *Server) Close() {
	_ = s.udp.Shutdown()
	_ = s.tcp.Shutdown()
}

// Exchange sends m to addr over net ("udp" or "tcp") with a 2 s timeout.
func Exchange(t testing.TB, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 2 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("exchange %s %s over %s: %v", m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], network, err)
	}
	return r
}

// Query builds a recursive query for name and qtype.
func Query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	return m
}
