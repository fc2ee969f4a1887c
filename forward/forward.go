package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
)

// Errors of the forward stage, checked with errors.Is.
var (
	// ErrNoHealthy: every upstream for the query is marked down.
	ErrNoHealthy = errors.New("no healthy upstream")
	// ErrUpstreamRcode: an upstream answered SERVFAIL, REFUSED, FORMERR or
	// NOTIMP, which is not passed to the client.
	ErrUpstreamRcode = errors.New("upstream error reply")
	// ErrMaxConcurrent: MaxConcurrent upstream queries were in flight.
	ErrMaxConcurrent = errors.New("too many concurrent upstream queries")
	// ErrQuestion: the query does not hold exactly one question.
	ErrQuestion = errors.New("query must hold one question")
	// ErrStopped: Start after Stop.
	ErrStopped = errors.New("forward stopped")
)

const (
	// maxRounds bounds passes over the upstream list within the query
	// deadline, so an upstream that fails fast is not hammered in a loop.
	maxRounds = 3
	// stackUpstreams is how many upstreams a query orders without allocating.
	stackUpstreams = 8
)

// Options are the collaborators of a Forward.
type Options struct {
	Metrics *Metrics     // nil: unregistered collectors
	Logger  *slog.Logger // nil: discard
}

// Forward is the upstream stage. It is the last handler of the chain and
// never passes a query on.
type Forward struct {
	cfg   Config
	log   *slog.Logger
	m     *Metrics
	def   *group
	zones map[string]*group // lower-case FQDN zone -> group; nil without stub domains
	all   []*upstream       // every distinct upstream, default ones first
	now   func() time.Time  // pooled-socket clock; tests replace it
	loops *loops            // never nil

	inflight atomic.Int64
	udpBufs  bufPool

	mu      sync.Mutex // guards following
	cancel  context.CancelFunc
	stopped bool
	wg      sync.WaitGroup // probers and janitor
}

var (
	_ resolver.Handler = (*Forward)(nil)
	_ resolver.Runner  = (*Forward)(nil)
	_ resolver.Readier = (*Forward)(nil)
)

// New validates cfg, reads any resolv.conf files it names and returns a
// Forward ready to serve; Start runs its health probes.
func New(cfg Config, opts Options) (*Forward, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &Forward{cfg: cfg, log: opts.Logger, m: opts.Metrics, now: time.Now, loops: newLoops()}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.m == nil {
		f.m = NewMetrics(nil)
	}
	byAddr := map[netip.AddrPort]*upstream{}
	build := func(field string, list []string) (*group, error) {
		addrs, err := ParseUpstreams(list)
		if err != nil {
			return nil, resolver.Prefix(field, err)
		}
		g := &group{policy: cfg.Policy}
		for _, ap := range addrs {
			u := byAddr[ap]
			if u == nil {
				u = newUpstream(ap, f.m)
				byAddr[ap] = u
				f.all = append(f.all, u)
			}
			g.ups = append(g.ups, u)
		}
		return g, nil
	}
	var err error
	if f.def, err = build("upstreams", cfg.Upstreams); err != nil {
		return nil, err
	}
	for _, key := range slices.Sorted(maps.Keys(cfg.Zones)) { // sorted: Upstreams() order is stable
		list := cfg.Zones[key]
		z, _ := normalizeZone(key) // Validate checked it
		if f.zones == nil {
			f.zones = make(map[string]*group, len(cfg.Zones))
		}
		if f.zones[z], err = build("zones."+key, list); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Name implements resolver.Handler.
func (f *Forward) Name() string { return "forward" }

// Upstreams returns every upstream, per-zone ones included, for the
// server's forwarding-loop check.
func (f *Forward) Upstreams() []netip.AddrPort {
	out := make([]netip.AddrPort, len(f.all))
	for i, u := range f.all {
		out[i] = u.addr
	}
	return out
}

// ServeDNS implements resolver.Handler. It writes the first usable upstream
// reply as received (client's ID restored) or writes nothing and returns
// SERVFAIL, or REFUSED when over MaxConcurrent. One of our own loop probes
// arriving here is SERVFAIL at once: it came around a forwarding loop.
func (f *Forward) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if len(r.Question) != 1 {
		return dns.RcodeFormatError, fmt.Errorf("forward: %w", ErrQuestion)
	}
	if isLoopName(r.Question[0].Name) && f.looped(r.Question[0].Name) {
		return dns.RcodeServerFailure, fmt.Errorf("forward %s: our loop probe came back: %w", r.Question[0].Name, ErrLoop)
	}
	if f.inflight.Add(1) > int64(f.cfg.MaxConcurrent) {
		f.inflight.Add(-1)
		f.m.rejects.Inc()
		return dns.RcodeRefused, fmt.Errorf("forward %s: %w", r.Question[0].Name, ErrMaxConcurrent)
	}
	defer f.inflight.Add(-1)

	q := newQuery(r)
	var buf [stackUpstreams]*upstream
	reply, err := f.resolve(ctx, f.route(q.name).order(buf[:0]), &q)
	if errors.Is(err, errPack) {
		return dns.RcodeFormatError, fmt.Errorf("forward: %w", err)
	}
	if err != nil {
		return dns.RcodeServerFailure, fmt.Errorf("forward %s %s: %w", q.name, dns.TypeToString[q.qtype], err)
	}
	reply.Id = r.Id
	if err := w.WriteMsg(reply); err != nil {
		return reply.Rcode, fmt.Errorf("forward %s: write reply: %w", q.name, err)
	}
	return reply.Rcode, nil
}

// resolve tries the upstreams in order, skipping down and looping ones,
// until one gives a usable reply. Another pass is made only after network
// failures and while the query's deadline allows.
func (f *Forward) resolve(ctx context.Context, list []*upstream, q *query) (*dns.Msg, error) {
	var lastErr error
	attempts := 0
	_, hasDeadline := ctx.Deadline()
	for round := 0; round < maxRounds; round++ {
		tried, netFails, looping := 0, 0, 0
		for _, u := range list {
			if u.looping.Load() {
				looping++ // sending would only feed the loop
				continue
			}
			if u.down.Load() {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, errors.Join(err, lastErr)
			}
			tried++
			m, err := f.attempt(ctx, u, q)
			attempts++
			if errors.Is(err, errPack) {
				return nil, err // the query's fault, not the upstream's
			}
			if err != nil {
				lastErr = err
				netFails++
				// a cancelled query, or a later attempt cut short by the
				// query deadline, says nothing about the upstream
				if ctx.Err() == nil || (attempts == 1 && !errors.Is(ctx.Err(), context.Canceled)) {
					f.failed(u, err)
				}
				continue
			}
			u.answered()
			if !resolver.ClientWrote(m.Rcode) {
				lastErr = fmt.Errorf("%w: %s from %s", ErrUpstreamRcode, dns.RcodeToString[m.Rcode], u.label)
				continue
			}
			return m, nil
		}
		if tried == 0 && lastErr == nil {
			if looping > 0 {
				return nil, ErrLoop
			}
			return nil, ErrNoHealthy
		}
		if tried == 0 || netFails == 0 || !hasDeadline {
			break
		}
	}
	return nil, lastErr
}

// attempt is one try against u within cfg.Timeout: UDP (unless ForceTCP),
// and over TCP to the same upstream when the UDP reply is truncated.
func (f *Forward) attempt(ctx context.Context, u *upstream, q *query) (*dns.Msg, error) {
	start := time.Now()
	u.requests.Inc()
	m, err := f.exchange(ctx, u, q, f.cfg.ForceTCP, f.deadline(ctx, start))
	if errors.Is(err, errTruncated) {
		f.m.tcpFallbacks.Inc()
		u.requests.Inc()
		m, err = f.exchange(ctx, u, q, true, f.deadline(ctx, time.Now()))
	}
	if err != nil {
		return nil, err
	}
	u.duration.Observe(time.Since(start).Seconds())
	u.response(m.Rcode).Inc()
	return m, nil
}

// deadline is the end of an attempt starting at now: cfg.Timeout, cut to
// the query's deadline.
func (f *Forward) deadline(ctx context.Context, now time.Time) time.Time {
	d := now.Add(f.cfg.Timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// Start runs the health probers, the idle-socket janitor and the loop
// prober, whose first round starts at once. It is idempotent; the goroutines
// live until Stop, not until ctx ends.
func (f *Forward) Start(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return fmt.Errorf("forward: start: %w", ErrStopped)
	}
	if f.cancel != nil {
		return nil
	}
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f.cancel = cancel
	f.wg.Add(len(f.all) + 1)
	for _, u := range f.all {
		go f.prober(run, u)
	}
	go f.janitor(run)
	if f.cfg.LoopCheck > 0 {
		f.wg.Add(1)
		go f.loopProber(run)
	}
	return nil
}

// Stop ends the probers, closes pooled sockets (sockets of queries still in
// flight are closed when they come back) and waits for the goroutines until
// ctx is done. It is idempotent.
func (f *Forward) Stop(ctx context.Context) error {
	f.mu.Lock()
	f.stopped = true
	if f.cancel != nil {
		f.cancel()
	}
	f.mu.Unlock()
	for _, u := range f.all {
		u.closeIdle(true)
	}
	done := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("forward: stop: %w", ctx.Err())
	}
}
