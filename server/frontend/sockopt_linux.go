package frontend

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	haveReuseport = true
	msgTrunc      = unix.MSG_TRUNC
	// oobSize fits one IPv4 or IPv6 packet-info control message.
	oobSize = 64
)

// sockControl sets SO_REUSEPORT and, for wildcard UDP sockets, asks for the
// destination address of each packet so the reply leaves from it (a
// multi-homed host would otherwise answer from another address).
func sockControl(reuseport, pktinfo bool) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if reuseport {
				if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
					serr = fmt.Errorf("SO_REUSEPORT: %w", err)
					return
				}
			}
			if pktinfo {
				// One of the two fails on a single-family socket.
				err4 := unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
				err6 := unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
				if err4 != nil && err6 != nil {
					serr = fmt.Errorf("IP_PKTINFO: %w", err4)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// cmsgLenSize is the width of cmsghdr.cmsg_len (size_t).
const cmsgLenSize = int(unsafe.Sizeof(unix.Cmsghdr{}.Len))

// parseDst returns the destination address and interface of a received
// packet from its control messages; ok is false when there is none.
func parseDst(oob []byte) (dst netip.Addr, ifindex uint32, ok bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		var l int
		if cmsgLenSize == 8 {
			l = int(binary.NativeEndian.Uint64(oob))
		} else {
			l = int(binary.NativeEndian.Uint32(oob))
		}
		level := int32(binary.NativeEndian.Uint32(oob[cmsgLenSize:]))
		typ := int32(binary.NativeEndian.Uint32(oob[cmsgLenSize+4:]))
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return dst, 0, false
		}
		data := oob[unix.SizeofCmsghdr:l]
		switch {
		case level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
			return netip.AddrFrom4([4]byte(data[8:12])), 0, true
		case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo { in6_addr addr; unsigned ifindex; }
			return netip.AddrFrom16([16]byte(data[:16])), binary.NativeEndian.Uint32(data[16:]), true
		}
		next := unix.CmsgSpace(l - unix.SizeofCmsghdr)
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return dst, 0, false
}

// buildSrc writes into b a control message that sends from src, and returns
// its length (0 when src is invalid).
func buildSrc(b []byte, src netip.Addr, ifindex uint32) int {
	var level, typ, dlen int
	switch {
	case src.Is4() || src.Is4In6():
		level, typ, dlen = unix.IPPROTO_IP, unix.IP_PKTINFO, unix.SizeofInet4Pktinfo
	case src.Is6():
		level, typ, dlen = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unix.SizeofInet6Pktinfo
	default:
		return 0
	}
	n := unix.CmsgSpace(dlen)
	if n > len(b) {
		return 0
	}
	clear(b[:n])
	if cmsgLenSize == 8 {
		binary.NativeEndian.PutUint64(b, uint64(unix.CmsgLen(dlen)))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(unix.CmsgLen(dlen)))
	}
	binary.NativeEndian.PutUint32(b[cmsgLenSize:], uint32(level))
	binary.NativeEndian.PutUint32(b[cmsgLenSize+4:], uint32(typ))
	data := b[unix.SizeofCmsghdr:]
	if typ == unix.IP_PKTINFO {
		a := src.Unmap().As4()
		copy(data[4:8], a[:]) // spec_dst: the source address to use
	} else {
		a := src.As16()
		copy(data[:16], a[:])
		binary.NativeEndian.PutUint32(data[16:], ifindex)
	}
	return n
}
