//go:build !linux

package frontend

import (
	"net/netip"
	"syscall"
)

// Outside Linux the front end runs one UDP socket per address and replies
// from whatever source the kernel picks.
const (
	haveReuseport = false
	msgTrunc      = 0
	oobSize       = 0
)

func sockControl(reuseport, pktinfo bool) func(network, address string, c syscall.RawConn) error {
	return nil
}

func parseDst(oob []byte) (netip.Addr, uint32, bool) { return netip.Addr{}, 0, false }

func buildSrc(b []byte, src netip.Addr, ifindex uint32) int { return 0 }
