package frontend

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawSender sends the replies of one UDP socket with sendto(2), or
// sendmsg(2) when a source address must be set, made as raw system calls.
// The socket is non-blocking, so a call never waits; a raw call spares the
// runtime's bookkeeping for calls that may block, which on a busy server
// would have the monitor thread hand the processor to another thread in
// the middle of a send, and back.
type rawSender struct {
	rc     syscall.RawConn
	family int // unix.AF_INET or unix.AF_INET6: the socket's

	mu    sync.Mutex // guards following, which fn reads
	fn    func(fd uintptr) bool
	b     []byte
	oob   []byte
	sa    unix.RawSockaddrInet6 // or a RawSockaddrInet4 in its first bytes
	salen uint32
	errno syscall.Errno
}

func newRawSender(c *net.UDPConn) (*rawSender, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("raw conn: %w", err)
	}
	s := &rawSender{rc: rc}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		s.family, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); err != nil {
		return nil, fmt.Errorf("raw conn: %w", err)
	}
	if serr != nil {
		return nil, fmt.Errorf("SO_DOMAIN: %w", serr)
	}
	s.fn = s.call
	return s, nil
}

// send writes b to peer, from src (with ifindex) when oob holds its control
// message.
func (s *rawSender) send(b, oob []byte, peer netip.AddrPort) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.setPeer(peer) {
		return fmt.Errorf("send to %s: %w", peer, unix.EAFNOSUPPORT)
	}
	s.b, s.oob, s.errno = b, oob, 0
	err := s.rc.Write(s.fn)
	s.b, s.oob = nil, nil
	if err != nil {
		return err
	}
	if s.errno != 0 {
		return s.errno
	}
	return nil
}

// setPeer writes peer as a sockaddr of the socket's family.
func (s *rawSender) setPeer(peer netip.AddrPort) bool {
	n, ok := putSockaddr(&s.sa, s.family, peer)
	s.salen = n
	return ok
}

// putSockaddr writes peer into sa as a sockaddr of family (unix.AF_INET or
// unix.AF_INET6) and returns its length, or false when an IPv6 peer cannot
// be reached from an IPv4 socket.
func putSockaddr(sa *unix.RawSockaddrInet6, family int, peer netip.AddrPort) (uint32, bool) {
	a, port := peer.Addr(), peer.Port()
	if family == unix.AF_INET {
		if !a.Is4() && !a.Is4In6() {
			return 0, false
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.Unmap().As4()}
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		return unix.SizeofSockaddrInet4, true
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
	if z := a.Zone(); z != "" {
		// numeric, as batchReader makes it, or an interface name
		if n, err := strconv.ParseUint(z, 10, 32); err == nil {
			sa.Scope_id = uint32(n)
		} else if ifi, err := net.InterfaceByName(z); err == nil {
			sa.Scope_id = uint32(ifi.Index)
		}
	}
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	return unix.SizeofSockaddrInet6, true
}

// call is the RawConn callback: false asks the runtime to wait until the
// socket is writable and call it again.
func (s *rawSender) call(fd uintptr) bool {
	var errno syscall.Errno
	if s.oob == nil {
		_, _, errno = unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&s.b[0])), uintptr(len(s.b)),
			0, uintptr(unsafe.Pointer(&s.sa)), uintptr(s.salen))
	} else {
		iov := unix.Iovec{Base: &s.b[0]}
		iov.SetLen(len(s.b))
		var h unix.Msghdr
		h.Name = (*byte)(unsafe.Pointer(&s.sa))
		h.Namelen = s.salen
		h.Iov = &iov
		h.SetIovlen(1)
		h.Control = &s.oob[0]
		h.SetControllen(len(s.oob))
		_, _, errno = unix.RawSyscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&h)), 0)
	}
	if errno == unix.EAGAIN || errno == unix.EINTR {
		return false
	}
	s.errno = errno
	return true
}
