package frontend

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// listenAddr is one parsed Config.Listen entry.
type listenAddr struct {
	text     string // as configured, for errors
	host     string // "" for the dual-stack wildcard
	port     uint16
	udp, tcp string // networks: "udp4"/"tcp4", "udp6"/"tcp6" or "udp"/"tcp"
	wildcard bool   // unspecified address: replies need packet info
}

func parseListen(i int, s string) (listenAddr, error) {
	field := "listen[" + strconv.Itoa(i) + "]"
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return listenAddr{}, fieldErr(field, "%q: %v", s, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return listenAddr{}, fieldErr(field, "%q: bad port", s)
	}
	la := listenAddr{text: s, host: host, port: uint16(p), udp: "udp", tcp: "tcp", wildcard: true}
	if host == "" {
		return la, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return listenAddr{}, fieldErr(field, "%q: want an IP address, not a host name", s)
	}
	la.wildcard = ip.IsUnspecified()
	if ip.Is4() {
		la.udp, la.tcp = "udp4", "tcp4"
	} else {
		la.udp, la.tcp = "udp6", "tcp6"
	}
	return la, nil
}

func (la listenAddr) at(port uint16) string {
	return net.JoinHostPort(la.host, strconv.Itoa(int(port)))
}

// portRetries bounds the attempts to find a port 0 choice free for TCP too.
const portRetries = 10

// bind opens n UDP sockets and one TCP listener on la, all on one port.
func bind(ctx context.Context, la listenAddr, n int) ([]*net.UDPConn, *net.TCPListener, error) {
	reuse := n > 1 && haveReuseport
	if !haveReuseport {
		n = 1
	}
	ulc := net.ListenConfig{Control: sockControl(reuse, la.wildcard)}
	tlc := net.ListenConfig{}
	var udps []*net.UDPConn
	closeAll := func() {
		for _, u := range udps {
			u.Close()
		}
		udps = nil
	}
	var ln *net.TCPListener
	for attempt := 0; ; attempt++ {
		pc, err := ulc.ListenPacket(ctx, la.udp, la.at(la.port))
		if err != nil {
			return nil, nil, fmt.Errorf("listen %s %s: %w", la.udp, la.text, err)
		}
		u := pc.(*net.UDPConn)
		udps = append(udps, u)
		port := uint16(u.LocalAddr().(*net.UDPAddr).Port)
		l, err := tlc.Listen(ctx, la.tcp, la.at(port))
		if err != nil {
			closeAll()
			if la.port == 0 && attempt < portRetries {
				continue // the TCP side of the port UDP got is taken
			}
			return nil, nil, fmt.Errorf("listen %s %s: %w", la.tcp, la.text, err)
		}
		ln = l.(*net.TCPListener)
		for len(udps) < n {
			pc, err := ulc.ListenPacket(ctx, la.udp, la.at(port))
			if err != nil {
				closeAll()
				ln.Close()
				return nil, nil, fmt.Errorf("listen %s %s (socket %d): %w", la.udp, la.text, len(udps)+1, err)
			}
			udps = append(udps, pc.(*net.UDPConn))
		}
		return udps, ln, nil
	}
}
