package frontend

import "time"

// workerIdle is how long a worker waits for another query before ending.
// Starting a goroutine costs an allocation, so busy servers reuse them; the
// number of workers never exceeds the peak of queries in flight, which
// MaxInflight bounds.
const workerIdle = 10 * time.Second

// dispatch hands q to an idle worker, or starts one.
func (f *Frontend) dispatch(q *query) {
	select {
	case f.work <- q:
	default:
		f.workers.Add(1)
		go f.worker(q)
	}
}

func (f *Frontend) worker(q *query) {
	defer f.workers.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		q.serve()
		idle.Reset(workerIdle)
		select {
		case q = <-f.work:
		case <-idle.C:
			return
		case <-f.quit:
			return
		}
	}
}
