package frontend

import (
	"context"
	"net"
	"net/netip"
	"sync"
)

// ServePacket runs pkt through what a datagram read from a UDP socket goes
// through, or with tcp a message read from a TCP connection: the checks
// before parsing, admission, parsing, the chain and the shaping of every
// reply, with only the socket replaced by a recorder. It returns the replies
// that would have been sent, in order (none when the packet gets no reply),
// once the query is over, or ctx's error if it is not over by then. It is
// for fuzzing and tests; call it between Start and Stop.
func (f *Frontend) ServePacket(ctx context.Context, pkt []byte, from netip.AddrPort, tcp bool) ([][]byte, error) {
	if f.stopping.Load() {
		return nil, ErrStopped
	}
	tr := &recordTransport{done: make(chan struct{})}
	var q *query
	if tcp {
		// the reader drops the connection on a length below a header
		if len(pkt) < headerLen {
			f.m.malformed.Inc()
			return nil, nil
		}
		if f.tcpResponse(pkt) {
			return nil, nil
		}
		tr.laddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
		raddr := net.TCPAddrFromAddrPort(from)
		family := 0
		if raddr.IP.To4() == nil {
			family = 1
		}
		q = f.receiveTCP(tr, raddr, family)
	} else {
		tr.laddr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
		if q = f.receiveUDP(tr, pkt, false, from); q == nil {
			return nil, nil
		}
	}
	f.process(q, pkt, context.Background())
	select {
	case <-tr.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return tr.replies, nil
}

// recordTransport keeps the replies instead of sending them.
type recordTransport struct {
	laddr   net.Addr
	mu      sync.Mutex // guards replies until done is closed
	replies [][]byte
	done    chan struct{} // closed when the query is over
}

func (r *recordTransport) send(_ *query, frame []byte) error {
	r.mu.Lock()
	r.replies = append(r.replies, append([]byte(nil), frame[2:]...))
	r.mu.Unlock()
	return nil
}

func (r *recordTransport) localAddr() net.Addr { return r.laddr }

func (r *recordTransport) finished(*query) { close(r.done) }
