package frontend

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// replyBatch holds the replies the UDP reader writes while it handles one
// read batch and sends them with one sendmmsg(2) once the batch is handled:
// under load that saves a system call per reply, which is most of what a
// cache hit costs. The queries stay open until then, so their latency
// includes the send. It is used by the socket's reader goroutine only.
type replyBatch struct {
	rc     syscall.RawConn
	family int // the socket's: unix.AF_INET or unix.AF_INET6
	log    *slog.Logger

	msgs  [udpBatch]mmsghdr
	iovs  [udpBatch]unix.Iovec
	names [udpBatch]unix.RawSockaddrInet6
	oobs  [udpBatch][oobSize]byte
	errs  [udpBatch]syscall.Errno
	qs    [udpBatch]*query // whose reply msgs[i] is; each ends once sent
	bufs  []byte           // udpBatch buffers of maxUDPReply
	n     int              // replies held
	off   int              // next reply to send, while flushing
	fn    func(fd uintptr) bool
}

// newReplyBatch returns the reply batch of the socket raw sends through.
func newReplyBatch(raw *rawSender, log *slog.Logger) *replyBatch {
	b := &replyBatch{rc: raw.rc, family: raw.family, log: log, bufs: make([]byte, udpBatch*maxUDPReply)}
	for i := range b.msgs {
		b.iovs[i].Base = &b.bufs[i*maxUDPReply]
		h := &b.msgs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
	}
	b.fn = b.call
	return b
}

// add queues msg, the reply to q, and reports true, or false when it does
// not fit (the caller then sends it at once). q.mu is held.
func (b *replyBatch) add(q *query, msg []byte) bool {
	if b.n == udpBatch || len(msg) > maxUDPReply || len(msg) == 0 {
		return false
	}
	i := b.n
	salen, ok := putSockaddr(&b.names[i], b.family, q.peer)
	if !ok {
		return false // the direct send reports the error
	}
	copy(b.bufs[i*maxUDPReply:], msg)
	h := &b.msgs[i].hdr
	h.Namelen = salen
	b.iovs[i].SetLen(len(msg))
	h.Control = nil
	h.SetControllen(0)
	if q.dst.IsValid() {
		if n := buildSrc(b.oobs[i][:], q.dst, q.ifindex); n > 0 {
			h.Control = &b.oobs[i][0]
			h.SetControllen(n)
		}
	}
	b.qs[i] = q
	b.n++
	q.queued = true
	return true
}

// flush sends the replies held, in order, and ends their queries.
func (b *replyBatch) flush() {
	if b.n == 0 {
		return
	}
	b.off = 0
	clear(b.errs[:b.n])
	werr := b.rc.Write(b.fn) // the socket is closed: the rest are not sent
	now := time.Now()
	for i, q := range b.qs[:b.n] {
		var err error
		switch {
		case b.errs[i] != 0:
			err = fmt.Errorf("sendmmsg: %w", b.errs[i])
		case werr != nil && i >= b.off:
			err = werr
		}
		if err != nil && b.log.Enabled(context.Background(), slog.LevelDebug) {
			b.log.Debug("frontend: reply", "err", fmt.Errorf("send reply to %s: %w", q.raddr, err))
		}
		b.qs[i] = nil
		q.queued = false
		q.finish(now)
	}
	b.n = 0
}

// call is the RawConn callback: false asks the runtime to wait until the
// socket is writable and call it again. A reply the kernel refuses is
// recorded and skipped; the rest are still sent.
func (b *replyBatch) call(fd uintptr) bool {
	for b.off < b.n {
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[b.off])),
			uintptr(b.n-b.off), 0, 0, 0)
		switch errno {
		case 0:
			b.off += max(int(n), 1)
		case unix.EAGAIN:
			return false
		case unix.EINTR:
		default:
			b.errs[b.off] = errno
			b.off++
		}
	}
	return true
}
