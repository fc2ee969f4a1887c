//go:build !linux

package frontend

import (
	"net"
	"net/netip"
)

// batchReader reads one datagram at a time outside Linux.
type batchReader struct {
	c    *net.UDPConn
	buf  []byte
	oob  []byte
	n    int
	oobn int
	cut  bool
	peer netip.AddrPort
}

func newBatchReader(c *net.UDPConn, pktinfo bool) (*batchReader, error) {
	b := &batchReader{c: c, buf: make([]byte, udpReadSize)}
	if pktinfo {
		b.oob = make([]byte, oobSize)
	}
	return b, nil
}

// read reads datagrams one at a time and calls handle for each until
// handle returns false (read then returns nil) or reading fails.
func (b *batchReader) read(handle func(n int) bool) error {
	for {
		n, oobn, flags, peer, err := b.c.ReadMsgUDPAddrPort(b.buf, b.oob)
		if err != nil {
			return err
		}
		b.n, b.oobn, b.cut, b.peer = n, oobn, flags&msgTrunc != 0, peer
		if !handle(1) {
			return nil
		}
	}
}

func (b *batchReader) datagram(int) (pkt []byte, cut bool, peer netip.AddrPort, oob []byte) {
	return b.buf[:b.n], b.cut, b.peer, b.oob[:b.oobn]
}
