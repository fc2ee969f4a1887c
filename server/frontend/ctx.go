package frontend

import (
	"context"
	"sync"
	"time"
)

// queryCtx is the context handed to the chain. It lives inside the query (no
// allocation) and creates its Done channel and timer only when a stage asks
// for Done: the cache-hit and cluster-answer paths never do, while
// context.WithTimeout would cost three allocations on every query.
//
// Err and Done agree: Err turns non-nil exactly when Done is (or would be)
// closed, whether the deadline is noticed by the timer or by Err itself.
type queryCtx struct {
	parent   context.Context // for Value; never nil
	deadline time.Time

	mu    sync.Mutex    // guards following
	done  chan struct{} // nil until Done or AfterFunc is called
	timer *time.Timer   // fires at deadline once done exists
	err   error         // nil while running
	after []*afterFunc  // registered by AfterFunc, run when the context ends
}

// afterFunc is one function registered with AfterFunc.
type afterFunc struct {
	f       func()
	stopped bool // guarded by queryCtx.mu
}

func (c *queryCtx) init(parent context.Context, deadline time.Time) {
	c.parent = parent
	c.deadline = deadline
}

// Deadline implements context.Context.
func (c *queryCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// DeadlineOnly reports that, while the chain runs the query, the context
// ends at its deadline and never earlier (its parent is never cancelled and
// cancel runs once the handler has returned). A stage blocked on a socket
// whose deadline is this one's needs no Done watcher at all (see forward);
// work a stage leaves running past its return ends at the deadline at the
// latest.
func (c *queryCtx) DeadlineOnly() bool { return true }

// Value implements context.Context.
func (c *queryCtx) Value(key any) any { return c.parent.Value(key) }

// Done implements context.Context.
func (c *queryCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armLocked()
	return c.done
}

// AfterFunc lets context.AfterFunc register f on this context directly.
// Without it the context package watches a foreign context with a goroutine
// of its own, one per call: the forward stage calls it on every attempt.
func (c *queryCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := &afterFunc{f: f}
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	c.armLocked()
	if c.err != nil { // the deadline had already passed
		go f()
		return func() bool { return false }
	}
	c.after = append(c.after, a)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if a.stopped || c.err != nil {
			return false
		}
		a.stopped = true
		return true
	}
}

// armLocked creates the Done channel and the deadline timer once.
func (c *queryCtx) armLocked() {
	if c.done == nil {
		c.done = make(chan struct{})
		switch d := time.Until(c.deadline); {
		case c.err != nil:
			close(c.done)
		case d <= 0:
			c.endLocked(context.DeadlineExceeded)
		default:
			c.timer = time.AfterFunc(d, c.expire)
		}
	}
}

// armed reports whether Done or AfterFunc was called: a timer, a channel or
// a stop function may then still refer to the context.
func (c *queryCtx) armed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done != nil
}

// Err implements context.Context.
func (c *queryCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && !time.Now().Before(c.deadline) {
		c.endLocked(context.DeadlineExceeded)
	}
	return c.err
}

func (c *queryCtx) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.endLocked(context.DeadlineExceeded)
	}
}

// cancel ends the context when the query is finished, so contexts derived
// from it (and their goroutines) end too.
func (c *queryCtx) cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.endLocked(context.Canceled)
	}
}

func (c *queryCtx) endLocked(err error) {
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	for _, a := range c.after {
		if !a.stopped {
			a.stopped = true
			go a.f()
		}
	}
	c.after = nil
}
