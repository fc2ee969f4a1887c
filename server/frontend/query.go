package frontend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
)

// ErrLateWrite is returned by WriteMsg once the handler has returned: the
// ResponseWriter is only valid during ServeDNS.
var ErrLateWrite = errors.New("frontend: write after the handler returned")

var errPanic = errors.New("panic in handler")

// transport is where a query came from and its replies go.
type transport interface {
	// send writes one packed reply; frame[:2] is free room for the TCP
	// length prefix and frame[2:] is the message.
	send(q *query, frame []byte) error
	localAddr() net.Addr
	// finished is called once per query, when it is over.
	finished(q *query)
}

// query is one received query: the parsed request, its client, the context
// and the dns.ResponseWriter handed to the chain, in a single allocation.
// A query that reached a worker (ServeDNS) is never reused, so a stage that
// keeps r after returning is safe; one answered in the UDP reader (by the
// front end itself or by ServeInline, whose contract forbids keeping it) is
// recycled. It is allocated with a malloc header (over 512 bytes, with
// pointers): at most 888 bytes keep it in the 896-byte size class
// (TestQuerySize).
type query struct {
	f        *Frontend
	tr       transport
	raddr    net.Addr       // *net.UDPAddr (&uaddr) or *net.TCPAddr
	peer     netip.AddrPort // UDP client
	dst      netip.Addr     // UDP: the address the query was sent to, when known
	uaddr    net.UDPAddr
	ip       [16]byte
	ifindex  uint32
	proto    uint8 // protoUDP or protoTCP
	family   uint8 // 0 IPv4, 1 IPv6
	admitted bool  // holds an in-flight slot
	pooled   bool  // from Frontend.queries: recycled unless kept (see process)
	kept     bool  // a panic or an armed context may have left references to it
	inReader bool  // UDP, in the reader goroutine: replies go to its replyBatch
	queued   bool  // a reply waits in the reader's replyBatch, which ends q
	written  bool  // guarded by mu; here, not below it, to save padding
	done     bool  // guarded by mu; the handler returned: later writes are refused
	start    time.Time
	ctx      queryCtx

	req    dns.Msg
	reqQ   [1]dns.Question
	reqX   [1]dns.RR
	reqOpt dns.OPT
	edns   *dns.OPT // the client's OPT record; nil without EDNS
	nOpt   int      // OPT records in the request

	mu    sync.Mutex // guards following and written, done; held while packing and sending
	rcode int        // of the first reply written
	out   dns.Msg
	outX  [4]dns.RR
	opt   dns.OPT
	oob   [oobSize]byte
}

// process runs in the reader goroutine: it parses, answers what never reaches
// the chain and what the chain answers inline, and hands the rest to a worker.
func (f *Frontend) process(q *query, pkt []byte, base context.Context) {
	if q.prepare(pkt, base) || q.queued {
		return // a worker has it, or the reader's reply batch ends it
	}
	q.finish(time.Now())
}

// finish ends q, answered in the reader goroutine, at now and recycles it
// unless something may still refer to it.
func (q *query) finish(now time.Time) {
	q.endAt(now)
	if q.pooled && !q.kept && !q.ctx.armed() {
		q.f.putQuery(q)
	}
}

// prepare reports whether q went to a worker; otherwise it has been answered
// (or a panic in our own code, counted and logged, left it unanswered).
func (q *query) prepare(pkt []byte, base context.Context) (dispatched bool) {
	f := q.f
	defer func() {
		if p := recover(); p != nil {
			f.panicked(q, p)
			dispatched = false
		}
	}()
	if q.start.IsZero() { // else the reader set its read time
		q.start = time.Now()
	}
	if !q.parse(pkt) {
		f.m.malformed.Inc()
		q.formErrHeader(pkt)
		return false
	}
	var qtype uint16
	if len(q.req.Question) == 1 {
		qtype = q.req.Question[0].Qtype
	}
	f.m.request(int(q.proto), int(q.family), qtype)
	switch rc := q.check(); {
	case !q.admitted:
		q.reply(dns.RcodeRefused)
	case rc >= 0:
		q.reply(rc)
	case qtype == dns.TypeANY:
		q.replyANY()
	default:
		q.ctx.init(base, q.start.Add(f.cfg.QueryTimeout))
		if q.proto == protoUDP && q.serveInline() {
			return false
		}
		q.inReader = false // a worker sends its replies itself
		f.dispatch(q)
		return true
	}
	return false
}

// serveInline answers q in the calling goroutine if the chain takes it
// inline, and reports whether it did. Only a chain whose head is a
// resolver.InlineHandler is offered queries (the cache its hits, the index
// its names): the handoff to a worker costs as much as such an answer. Over
// TCP every query goes to a worker, so a slow client's reply never holds up
// reading its connection.
func (q *query) serveInline() bool {
	h := q.f.handler.Load().h
	ih, ok := h.(resolver.InlineHandler)
	if !ok {
		return false
	}
	served, rcode, err := q.callInline(ih)
	if served {
		q.conclude(h, rcode, err)
	}
	return served
}

func (q *query) callInline(ih resolver.InlineHandler) (served bool, rcode int, err error) {
	defer func() {
		if p := recover(); p != nil {
			q.f.panicked(q, p)
			served, rcode, err = true, dns.RcodeServerFailure, errPanic
		}
	}()
	return ih.ServeInline(&q.ctx, q, &q.req)
}

// check returns the rcode for a query the chain must not see, or -1.
func (q *query) check() int {
	r := &q.req
	switch {
	case r.Opcode != dns.OpcodeQuery:
		return dns.RcodeNotImplemented
	case len(r.Question) != 1:
		return dns.RcodeFormatError
	case q.nOpt > 1 || (q.edns != nil && q.edns.Hdr.Name != "."):
		return dns.RcodeFormatError // RFC 6891 6.1.1
	case q.edns != nil && q.edns.Version() != 0:
		return dns.RcodeBadVers
	case r.Question[0].Qclass != dns.ClassINET:
		return dns.RcodeRefused
	}
	switch r.Question[0].Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		if q.proto == protoUDP {
			return dns.RcodeRefused
		}
	}
	return -1
}

func (q *query) serve() {
	defer q.end()
	defer func() {
		// Only our own code runs here; still, never crash the process.
		if p := recover(); p != nil {
			q.f.panicked(q, p)
		}
	}()
	h := q.f.handler.Load().h
	rcode, err := q.call(h)
	q.conclude(h, rcode, err)
}

func (q *query) call(h resolver.Handler) (rcode int, err error) {
	defer func() {
		if p := recover(); p != nil {
			q.f.panicked(q, p)
			rcode, err = dns.RcodeServerFailure, errPanic
		}
	}()
	return h.ServeDNS(&q.ctx, q, &q.req)
}

// conclude writes the reply the handler left to us and closes the writer.
func (q *query) conclude(h resolver.Handler, rcode int, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.written {
		if resolver.ClientWrote(rcode) {
			q.f.log.Error("frontend: stage returned a written rcode but wrote nothing; answering SERVFAIL",
				"handler", h.Name(), "rcode", dns.RcodeToString[rcode], "name", q.qname())
			rcode = dns.RcodeServerFailure
		}
		q.replyLocked(rcode)
	}
	q.done = true
	if err != nil && err != errPanic && q.f.log.Enabled(context.Background(), slog.LevelDebug) {
		q.f.log.Debug("frontend: query failed", "handler", h.Name(), "name", q.req.Question[0].Name,
			"type", dns.TypeToString[q.req.Question[0].Qtype], "err", err)
	}
}

func (f *Frontend) panicked(q *query, p any) {
	q.kept = true // whatever panicked may hold on to it
	f.m.panics.Inc()
	var name string
	if len(q.req.Question) > 0 {
		name = q.req.Question[0].Name
	}
	f.log.Error("frontend: panic answering query", "panic", fmt.Sprint(p), "name", name, "stack", string(debug.Stack()))
}

// end accounts for a finished query and gives back what it held.
func (q *query) end() { q.endAt(time.Now()) }

// endAt is end with the time now.
func (q *query) endAt(now time.Time) {
	f := q.f
	q.ctx.cancel()
	q.mu.Lock()
	written, rcode := q.written, q.rcode
	q.done = true
	q.mu.Unlock()
	if written {
		f.m.response(rcode)
	}
	d := now.Sub(q.start)
	f.m.duration.Observe(d.Seconds())
	if f.cfg.LogQueries {
		q.log(written, rcode, d)
	}
	q.tr.finished(q)
	if q.admitted {
		f.release()
	}
}

func (q *query) log(written bool, rcode int, d time.Duration) {
	name, qtype := "", ""
	if len(q.req.Question) > 0 {
		name, qtype = q.req.Question[0].Name, dns.TypeToString[q.req.Question[0].Qtype]
	}
	rc := "none"
	if written {
		rc = dns.RcodeToString[rcode]
	}
	q.f.log.LogAttrs(context.Background(), slog.LevelInfo, "query",
		slog.String("client", q.raddr.String()), slog.String("proto", protoNames[q.proto]),
		slog.String("name", name), slog.String("type", qtype), slog.String("rcode", rc),
		slog.Duration("duration", d))
}

// LocalAddr implements dns.ResponseWriter.
func (q *query) LocalAddr() net.Addr { return q.tr.localAddr() }

// RemoteAddr implements dns.ResponseWriter: a *net.UDPAddr or *net.TCPAddr.
func (q *query) RemoteAddr() net.Addr { return q.raddr }

// WriteMsg implements dns.ResponseWriter. Over UDP only the first reply is
// sent; over TCP each is (AXFR streams several).
func (q *query) WriteMsg(m *dns.Msg) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.done {
		return ErrLateWrite
	}
	if q.written && q.proto == protoUDP {
		return nil
	}
	return q.writeLocked(m)
}

// Write implements dns.ResponseWriter; b is unpacked so the reply gets the
// same treatment as one given to WriteMsg.
func (q *query) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, fmt.Errorf("frontend: write: %w", err)
	}
	if err := q.WriteMsg(m); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Close implements dns.ResponseWriter; the front end owns the connection,
// so it does nothing.
func (q *query) Close() error { return nil }

// TsigStatus implements dns.ResponseWriter; TSIG is not supported.
func (q *query) TsigStatus() error { return nil }

// TsigTimersOnly implements dns.ResponseWriter.
func (q *query) TsigTimersOnly(bool) {}

// Hijack implements dns.ResponseWriter; the connection cannot be taken over.
func (q *query) Hijack() {}
