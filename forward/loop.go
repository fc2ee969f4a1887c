package forward

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Forwarding-loop detection. In a loop our forwarded queries come back to us
// (an upstream that is this server behind another address, or one that
// forwards to us) and every pass adds a query in flight until timeouts end
// it. The server's config check refuses an upstream that is literally our
// listen address; this finds the rest at run time, as CoreDNS's loop plugin
// does at start, but without exiting: at Start, on CheckLoops and every
// Config.LoopCheck, each upstream is sent a probe for a fresh random name
// under loopZone. If that name reaches ServeDNS as a client query, it went
// around: the upstream is marked looping, is no longer used, and Ready says
// so. A later probe answered without coming back clears the mark. Our own
// probe names are answered SERVFAIL without forwarding, so a probe goes
// around once; probe names of other servers are forwarded like any name, for
// their owner to recognise.

// ErrLoop: every upstream for the query forwards back to us.
var ErrLoop = errors.New("forwarding loop")

// loopZone is the parent of every probe name. It is not a real TLD, so an
// upstream that does not loop answers NXDOMAIN (from its cache of the root).
const loopZone = "clusterdns-loop-detect."

// loopProbe is one probe name in flight, or of the previous round.
type loopProbe struct {
	u     *upstream
	round uint64
	seen  bool // the name came back to us; guarded by loops.mu
}

// loops is the detector's state, shared by ServeDNS and the loop prober.
type loops struct {
	wake chan struct{} // buffered 1: CheckLoops asks for a round

	mu     sync.Mutex            // guards following
	probes map[string]*loopProbe // probe name -> probe
	round  uint64
}

func newLoops() *loops {
	return &loops{wake: make(chan struct{}, 1), probes: make(map[string]*loopProbe)}
}

// isLoopName reports whether name (a query name, trailing dot optional) is
// below loopZone; it is the only cost loop detection adds to a query.
func isLoopName(name string) bool {
	name = strings.TrimSuffix(name, ".")
	z := loopZone[:len(loopZone)-1]
	n := len(name) - len(z)
	return n > 0 && name[n-1] == '.' && strings.EqualFold(name[n:], z)
}

// looped handles a query for a name below loopZone. It reports true, after
// marking the probe's upstream looping, when the name is one of our probes.
func (f *Forward) looped(name string) bool {
	key := strings.ToLower(dns.Fqdn(name))
	f.loops.mu.Lock()
	p := f.loops.probes[key]
	if p != nil {
		p.seen = true
	}
	f.loops.mu.Unlock()
	if p == nil {
		return false
	}
	if p.u.looping.CompareAndSwap(false, true) {
		p.u.loopingGauge.Set(1)
		f.log.Error("forwarding loop detected: queries sent to this upstream come back to us; it is no longer used and /ready reports it",
			"upstream", p.u.label, "probe", key)
	}
	return true
}

// CheckLoops asks for a loop-probe round soon: call it when where the
// upstreams lead may have changed (our DNS listener started, a reload). It
// never blocks; with Config.LoopCheck 0 it does nothing.
func (f *Forward) CheckLoops() {
	if f.cfg.LoopCheck <= 0 {
		return
	}
	select {
	case f.loops.wake <- struct{}{}:
	default: // a round is already asked for
	}
}

// loopProber owns the probe rounds: one at start, then every LoopCheck and
// whenever CheckLoops asks.
func (f *Forward) loopProber(ctx context.Context) {
	defer f.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.loops.wake:
		}
		f.probeLoops(ctx)
		t.Reset(f.cfg.LoopCheck)
	}
}

// probeLoops sends one probe to every upstream at once and waits for all.
func (f *Forward) probeLoops(ctx context.Context) {
	l := f.loops
	l.mu.Lock()
	l.round++
	round := l.round
	for name, p := range l.probes {
		if p.round+1 < round { // kept one round, for late arrivals
			delete(l.probes, name)
		}
	}
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, u := range f.all {
		wg.Go(func() { f.probeLoop(ctx, u, round) })
	}
	wg.Wait()
}

// probeLoop sends u one probe. A reply (of any rcode) for a name that did
// not come back to us shows u does not loop; no reply shows nothing.
func (f *Forward) probeLoop(ctx context.Context, u *upstream, round uint64) {
	name := fmt.Sprintf("%016x.%016x.%s", rand.Uint64(), rand.Uint64(), loopZone)
	p := &loopProbe{u: u, round: round}
	f.loops.mu.Lock()
	f.loops.probes[name] = p
	f.loops.mu.Unlock()

	q := query{name: name, qtype: dns.TypeHINFO, qclass: dns.ClassINET, bits: bitRD}
	_, err := f.exchange(ctx, u, &q, f.cfg.ForceTCP, time.Now().Add(f.cfg.Timeout))
	f.loops.mu.Lock()
	seen := p.seen
	f.loops.mu.Unlock()
	switch {
	case seen:
		// looped marked u when the name arrived
	case err == nil || errors.Is(err, errTruncated):
		if u.looping.CompareAndSwap(true, false) {
			u.loopingGauge.Set(0)
			f.log.Info("forwarding loop gone: a probe through the upstream no longer comes back to us", "upstream", u.label)
		}
	default:
		f.log.Debug("loop probe got no reply", "upstream", u.label, "err", err)
	}
}

// Ready implements resolver.Readier: the stage is not ready while any
// upstream forwards back to us.
func (f *Forward) Ready() (bool, string) {
	var bad []string
	for _, u := range f.all {
		if u.looping.Load() {
			bad = append(bad, u.label)
		}
	}
	if len(bad) == 0 {
		return true, ""
	}
	return false, "forward: forwarding loop through " + strings.Join(bad, ", ")
}
