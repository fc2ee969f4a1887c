package reliability

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Question is one query of a load.
type Question struct {
	Name string // fully qualified
	Type uint16
}

// Load is a bounded query load against one DNS server: it stops after Count
// queries or Duration of sending, whichever comes first, then waits at most
// Timeout for the replies still due. Each worker owns one socket (one TCP
// connection) and keeps up to Window queries outstanding on it.
type Load struct {
	Addr     netip.AddrPort
	TCP      bool
	Workers  int           // sockets; 0 means 4
	Window   int           // outstanding queries per worker; 0 means 16
	Rate     float64       // queries per second over all workers; 0 means as fast as the windows allow
	Count    int           // upper bound on queries sent; must be positive
	Duration time.Duration // upper bound on the sending time; must be positive
	Timeout  time.Duration // an unanswered query counts as a timeout after this; 0 means 2 s
	// Query returns the i-th query. Workers call it concurrently.
	Query func(i int) Question
	// Check judges every reply except SERVFAIL (counted apart); an error
	// makes it a wrong answer. Nil accepts everything.
	Check func(q Question, r *dns.Msg) error
	// Stop, when closed, ends sending early; replies still due are awaited
	// (ending ctx instead abandons them as timeouts).
	Stop <-chan struct{}
}

// Result is what a Load saw.
type Result struct {
	Sent     int // queries written to the wire
	Answered int // replies matched to a query in time, any rcode
	ServFail int // of Answered
	Wrong    int // of Answered: Check failed, or the reply did not parse
	Timeouts int // no reply within Timeout
	Errors   int // sends that failed, queries lost with a TCP connection
	Late     int // replies after their timeout, or matching no query
	Rcodes   map[int]int
	// WrongSamples holds the first few reasons for wrong answers.
	WrongSamples []string
	Latency      Histogram     // of answered queries
	Sending      time.Duration // first to last send
	Elapsed      time.Duration // first send to the last reply or timeout
	// Trouble counts, per second since the start (by send time), the
	// queries that timed out or took over TroubleLatency: where a load
	// suffered, to set beside what a scenario did when.
	Trouble map[int]int
}

// TroubleLatency is the latency from which an answered query counts in
// Result.Trouble.
const TroubleLatency = 500 * time.Millisecond

// TroubleString lists the seconds with trouble, e.g. "[12s:40 13s:8]".
func (r *Result) TroubleString() string {
	var b strings.Builder
	for sec := range int(r.Elapsed/time.Second) + 1 {
		if n := r.Trouble[sec]; n > 0 {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%ds:%d", sec, n)
		}
	}
	return "[" + b.String() + "]"
}

// P99 is the 99th percentile latency of the answered queries.
func (r *Result) P99() time.Duration { return r.Latency.Quantile(0.99) }

// AnsweredRatio is Answered / Sent (1 when nothing was sent).
func (r *Result) AnsweredRatio() float64 {
	if r.Sent == 0 {
		return 1
	}
	return float64(r.Answered) / float64(r.Sent)
}

// OfferedRate is the rate queries were actually sent at.
func (r *Result) OfferedRate() float64 {
	if r.Sending <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Sending.Seconds()
}

// String summarizes r for logs.
func (r *Result) String() string {
	return fmt.Sprintf("sent %d answered %d servfail %d wrong %d timeouts %d errors %d late %d rcodes %v p50 %v p99 %v max %v in %v",
		r.Sent, r.Answered, r.ServFail, r.Wrong, r.Timeouts, r.Errors, r.Late, rcodeNames(r.Rcodes),
		r.Latency.Quantile(0.5).Round(time.Microsecond), r.P99().Round(time.Microsecond),
		r.Latency.Max().Round(time.Microsecond), r.Elapsed.Round(time.Millisecond))
}

func rcodeNames(m map[int]int) string {
	var b strings.Builder
	for rc := range 24 {
		if n := m[rc]; n > 0 {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s:%d", dns.RcodeToString[rc], n)
		}
	}
	return "[" + b.String() + "]"
}

const maxWrongSamples = 5

func (r *Result) merge(o *Result) {
	r.Sent += o.Sent
	r.Answered += o.Answered
	r.ServFail += o.ServFail
	r.Wrong += o.Wrong
	r.Timeouts += o.Timeouts
	r.Errors += o.Errors
	r.Late += o.Late
	for rc, n := range o.Rcodes {
		r.Rcodes[rc] += n
	}
	for sec, n := range o.Trouble {
		r.Trouble[sec] += n
	}
	for _, s := range o.WrongSamples {
		if len(r.WrongSamples) < maxWrongSamples {
			r.WrongSamples = append(r.WrongSamples, s)
		}
	}
	r.Latency.Merge(&o.Latency)
}

// Run sends the load and returns what it saw. It returns early, with what
// was seen so far, when ctx ends. An error means the load could not run.
func (l Load) Run(ctx context.Context) (Result, error) {
	if l.Count <= 0 || l.Duration <= 0 || l.Query == nil {
		return Result{}, errors.New("load: Count, Duration and Query are required")
	}
	if !l.Addr.IsValid() || !l.Addr.Addr().IsLoopback() {
		return Result{}, fmt.Errorf("load: %s is not a loopback address", l.Addr)
	}
	if l.Workers <= 0 {
		l.Workers = 4
	}
	if l.Window <= 0 {
		l.Window = 16
	}
	if l.Timeout <= 0 {
		l.Timeout = 2 * time.Second
	}
	start := time.Now()
	ws := make([]*worker, l.Workers)
	for i := range ws {
		w := &worker{l: &l, pending: make(map[uint16]pend, l.Window), slots: make(chan struct{}, l.Window),
			res: Result{Rcodes: map[int]int{}, Trouble: map[int]int{}}, start: start, nextID: uint16(i * 7919)}
		if err := w.dial(ctx); err != nil {
			for _, w := range ws[:i] {
				w.close()
			}
			return Result{}, err
		}
		ws[i] = w
	}
	var (
		next     atomic.Int64 // index of the next query, shared so the rate schedule is global
		lastSend atomic.Int64 // unix nanos
		wg       sync.WaitGroup
	)
	stopSending := start.Add(l.Duration)
	for _, w := range ws {
		wg.Go(func() { w.run(ctx, start, stopSending, &next, &lastSend) })
	}
	wg.Wait()
	res := Result{Rcodes: map[int]int{}, Trouble: map[int]int{}}
	for _, w := range ws {
		res.merge(&w.res)
	}
	res.Elapsed = time.Since(start)
	if ls := lastSend.Load(); ls > 0 {
		res.Sending = time.Unix(0, ls).Sub(start)
	}
	return res, nil
}
