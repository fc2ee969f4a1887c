package kubeindex

import (
	"context"
	"runtime/debug"
	"time"

	"k8s.io/utils/clock"
)

const (
	// releaseEvery bounds releases to one a minute: a flapping watch that
	// relists over and over must not turn into a forced GC each time.
	releaseEvery = time.Minute
	// releaseQuiet is how long the handlers must have been idle after a
	// relist for its objects to count as taken in (and the old ones dead).
	releaseQuiet = 250 * time.Millisecond
	// releaseMaxWait releases anyway when the handlers never go idle (a
	// busy cluster), this long after the relist.
	releaseMaxWait = 10 * time.Second
	// releasePoll is how often the releaser looks for the initial sync and,
	// while a release is pending, for idle handlers.
	releasePoll = 50 * time.Millisecond
)

// releaser hands the memory a list leaves behind back to the operating
// system, once after the initial sync and once after each later relist, at
// most once per releaseEvery. A list leaves the heap well above what the
// index keeps; the Go runtime would return it only slowly (the background
// scavenger) and meanwhile keeps the GC goal it set when the heap was at its
// largest, so steady traffic would fill that up again. debug.FreeOSMemory
// runs one full GC and returns every free page; its cost, one GC of the live
// heap plus page faults as the heap regrows, is paid at most once a minute.
type releaser struct {
	kick   chan struct{} // a list completed; buffered, coalesced
	synced func() bool   // the store has synced
	events func() uint64 // handler events so far; idle while unchanged
	free   func()        // debug.FreeOSMemory; tests count calls
	done   func()        // after each free (metrics); may be nil
	clock  clock.Clock
	every  time.Duration // releaseEvery; tests shorten it

	// State of the run goroutine (tick), nobody else's.
	initial     bool      // the release after the initial sync is done
	pending     bool      // a relist waits for its release
	since       time.Time // when the pending relist was seen
	quietSince  time.Time // last handler activity seen while pending
	lastEvents  uint64
	lastRelease time.Time
}

func newReleaser(synced func() bool, events func() uint64, done func()) *releaser {
	return &releaser{
		kick:   make(chan struct{}, 1),
		synced: synced,
		events: events,
		free:   debug.FreeOSMemory,
		done:   done,
		clock:  clock.RealClock{},
		every:  releaseEvery,
	}
}

// listed records that an informer finished a list (its last page).
func (r *releaser) listed() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run releases after the initial sync and after each relist until ctx is
// done. It polls only until the sync and while a release is pending;
// otherwise it sleeps until the next list.
func (r *releaser) run(ctx context.Context) {
	for {
		if r.initial && !r.pending {
			select {
			case <-ctx.Done():
				return
			case <-r.kick:
				r.kicked(r.clock.Now())
			}
		} else {
			t := r.clock.NewTimer(releasePoll)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C():
			}
		}
		r.tick(r.clock.Now())
	}
}

// kicked marks a relist pending from now.
func (r *releaser) kicked(now time.Time) {
	if !r.pending {
		r.pending, r.since, r.lastEvents = true, now, r.events()
	}
	r.quietSince = now
}

// tick advances the state machine to now and releases when due.
func (r *releaser) tick(now time.Time) {
	if !r.initial {
		if !r.synced() {
			return
		}
		// The lists that made up the sync kicked too: this release covers them.
		select {
		case <-r.kick:
		default:
		}
		r.initial = true
		r.release(now)
		return
	}
	select {
	case <-r.kick:
		r.kicked(now)
	default:
	}
	if !r.pending {
		return
	}
	if n := r.events(); n != r.lastEvents {
		r.lastEvents, r.quietSince = n, now
	}
	if now.Sub(r.quietSince) < releaseQuiet && now.Sub(r.since) < releaseMaxWait {
		return // the handlers are still taking the relist in
	}
	if now.Sub(r.lastRelease) < r.every {
		return // rate-limited; relists meanwhile share the coming release
	}
	r.pending = false
	r.release(now)
}

func (r *releaser) release(now time.Time) {
	r.free()
	r.lastRelease = now
	if r.done != nil {
		r.done()
	}
}
