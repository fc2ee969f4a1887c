package frontend

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpBatch is how many datagrams one read takes at most. Under load one
// recvmmsg(2) returns what queued up while the previous batch was handled,
// which saves a system call and a pass through the runtime's poller per
// query; when idle it returns the one datagram there is.
const udpBatch = 16

// mmsghdr is struct mmsghdr; Go pads it to its alignment as C does.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// batchReader reads datagrams of one UDP socket with recvmmsg. It is used by
// the socket's reader goroutine only.
type batchReader struct {
	rc     syscall.RawConn
	msgs   [udpBatch]mmsghdr
	iovs   [udpBatch]unix.Iovec
	names  [udpBatch]unix.RawSockaddrInet6 // large enough for IPv4 too
	bufs   []byte                          // udpBatch buffers of udpReadSize
	oobs   []byte                          // udpBatch buffers of oobSize; nil without pktinfo
	fn     func(fd uintptr) bool           // the RawConn callback, made once
	handle func(n int) bool                // of the current read
	errno  syscall.Errno                   // of the last read
}

func newBatchReader(c *net.UDPConn, pktinfo bool) (*batchReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("raw conn: %w", err)
	}
	b := &batchReader{rc: rc, bufs: make([]byte, udpBatch*udpReadSize)}
	if pktinfo {
		b.oobs = make([]byte, udpBatch*oobSize)
	}
	for i := range b.msgs {
		b.iovs[i].Base = &b.bufs[i*udpReadSize]
		b.iovs[i].SetLen(udpReadSize)
		h := &b.msgs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
	}
	b.fn = b.recv
	return b, nil
}

// recv is the RawConn callback. It reads and handles batches until a read
// finds the socket empty or returns fewer than udpBatch datagrams, then
// returns false, which asks the runtime to wait until the socket is readable
// and call it again. Waiting right after a short read, instead of returning
// and reading again, spares the read that would find nothing on every idle
// turn: the short read emptied the socket, and any datagram queued since
// has marked it readable. It returns true when handle asks to stop or the
// read fails.
func (b *batchReader) recv(fd uintptr) bool {
	for {
		for i := range b.msgs {
			h := &b.msgs[i].hdr
			h.Namelen = unix.SizeofSockaddrInet6
			h.Flags = 0
			if b.oobs != nil {
				h.Control = &b.oobs[i*oobSize]
				h.SetControllen(oobSize)
			}
		}
		// A raw call: the socket is non-blocking (see rawSender).
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[0])), udpBatch, 0, 0, 0)
		switch errno {
		case 0:
		case unix.EAGAIN:
			return false
		case unix.EINTR:
			continue
		default:
			b.errno = errno
			return true
		}
		if !b.handle(int(n)) {
			return true
		}
		if n < udpBatch {
			return false
		}
	}
}

// read reads batches of datagrams and calls handle with the number each
// holds, which datagram returns, until handle returns false (read then
// returns nil) or reading fails.
func (b *batchReader) read(handle func(n int) bool) error {
	b.handle, b.errno = handle, 0
	err := b.rc.Read(b.fn)
	b.handle = nil
	if err != nil {
		return err
	}
	if b.errno != 0 {
		return fmt.Errorf("recvmmsg: %w", b.errno)
	}
	return nil
}

// datagram returns datagram i of the last read: its bytes, whether the
// kernel cut it, its sender and its control messages.
func (b *batchReader) datagram(i int) (pkt []byte, cut bool, peer netip.AddrPort, oob []byte) {
	m := &b.msgs[i]
	pkt = b.bufs[i*udpReadSize : i*udpReadSize+int(m.len)]
	cut = m.hdr.Flags&unix.MSG_TRUNC != 0
	peer = sockaddrAddrPort(&b.names[i])
	if b.oobs != nil {
		oob = b.oobs[i*oobSize : i*oobSize+int(m.hdr.Controllen)]
	}
	return pkt, cut, peer, oob
}

// sockaddrAddrPort converts what recvmmsg wrote as the sender.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
		return netip.AddrPortFrom(a, uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}
