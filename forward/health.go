package forward

import (
	"context"
	"errors"
	"time"

	"github.com/miekg/dns"
)

// failed counts a network failure of u; at MaxFails consecutive ones u is
// marked down and its prober woken.
func (f *Forward) failed(u *upstream, err error) {
	if f.cfg.MaxFails == 0 {
		return
	}
	if u.fails.Add(1) < uint32(f.cfg.MaxFails) || !u.down.CompareAndSwap(false, true) {
		return
	}
	u.healthy.Set(0)
	f.log.Warn("upstream marked down", "upstream", u.label, "fails", f.cfg.MaxFails, "err", err)
	u.closeIdle(false) // its sockets may be what is broken
	select {
	case u.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// answered resets the failure count: any matching reply, SERVFAIL included,
// shows the upstream is alive. Only the prober marks a down upstream up.
func (u *upstream) answered() {
	if u.fails.Load() != 0 {
		u.fails.Store(0)
	}
}

func (f *Forward) markUp(u *upstream) {
	u.fails.Store(0)
	if u.down.CompareAndSwap(true, false) {
		u.healthy.Set(1)
		f.log.Info("upstream up again", "upstream", u.label)
	}
}

// prober owns u's health probes: one loop per upstream, so at most one
// probe is in flight. It sleeps until u goes down.
func (f *Forward) prober(ctx context.Context, u *upstream) {
	defer f.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-u.wake:
		}
		f.probeUntilUp(ctx, u)
	}
}

func (f *Forward) probeUntilUp(ctx context.Context, u *upstream) {
	t := time.NewTicker(f.cfg.HealthCheck)
	defer t.Stop()
	for u.down.Load() {
		err := f.probe(ctx, u)
		if err == nil {
			f.markUp(u)
			return
		}
		if ctx.Err() != nil {
			return
		}
		u.hcFailures.Inc()
		f.log.Debug("health probe failed", "upstream", u.label, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe asks u for ". IN NS"; any matching reply means it is alive.
func (f *Forward) probe(ctx context.Context, u *upstream) error {
	q := query{name: ".", qtype: dns.TypeNS, qclass: dns.ClassINET, bits: bitRD}
	_, err := f.exchange(ctx, u, &q, f.cfg.ForceTCP, time.Now().Add(f.cfg.Timeout))
	if errors.Is(err, errTruncated) {
		return nil
	}
	return err
}

// janitor closes idle sockets once they expire, so a quiet upstream does not
// keep them open.
func (f *Forward) janitor(ctx context.Context) {
	defer f.wg.Done()
	t := time.NewTicker(f.cfg.Expire)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := f.now()
			for _, u := range f.all {
				u.sweep(now, f.cfg.Expire)
			}
		}
	}
}
