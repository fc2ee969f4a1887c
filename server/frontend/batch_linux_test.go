package frontend

import (
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
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
