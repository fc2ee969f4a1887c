package resolver

import (
	"net"

	"github.com/miekg/dns"
)

// Recorder is a dns.ResponseWriter that keeps the reply instead of sending
// it. Stages use it to look at what the rest of the chain answered (the cache
// stores it, kubeindex chases an ExternalName target through it). It reports
// the addresses of the writer it stands in for, so stages that look at the
// client (transport, family, ACLs) see the real one.
type Recorder struct {
	dns.ResponseWriter // the original writer, for addresses; never written to
	Msg                *dns.Msg
}

// NewRecorder returns a Recorder standing in for w; w may be nil for queries
// the server makes itself, in which case the client looks like 127.0.0.1
// over UDP.
func NewRecorder(w dns.ResponseWriter) *Recorder {
	if w == nil {
		w = internalWriter{}
	}
	return &Recorder{ResponseWriter: w}
}

// WriteMsg keeps m.
func (r *Recorder) WriteMsg(m *dns.Msg) error {
	r.Msg = m
	return nil
}

// Write keeps the reply given as wire bytes.
func (r *Recorder) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	r.Msg = m
	return len(b), nil
}

var internalAddr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}

// internalWriter is the stand-in client for queries the server makes itself.
type internalWriter struct{}

func (internalWriter) LocalAddr() net.Addr         { return internalAddr }
func (internalWriter) RemoteAddr() net.Addr        { return internalAddr }
func (internalWriter) WriteMsg(*dns.Msg) error     { return nil }
func (internalWriter) Write(b []byte) (int, error) { return len(b), nil }
func (internalWriter) Close() error                { return nil }
func (internalWriter) TsigStatus() error           { return nil }
func (internalWriter) TsigTimersOnly(bool)         {}
func (internalWriter) Hijack()                     {}
