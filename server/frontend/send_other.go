//go:build !linux

package frontend

import (
	"net"
	"net/netip"
)

// rawSender exists on Linux only; elsewhere replies go through net.UDPConn.
type rawSender struct{}

func newRawSender(*net.UDPConn) (*rawSender, error) { return nil, nil }

func (*rawSender) send([]byte, []byte, netip.AddrPort) error { return nil }
