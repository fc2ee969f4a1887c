package reliability

import (
	"math"
	"time"
)

// Histogram buckets grow by 5% from 1 µs, so a percentile read from it is at
// most 5% above the true value; 400 buckets reach past a minute.
const (
	histBuckets = 400
	histGrowth  = 1.05
)

// Histogram counts latencies in logarithmic buckets. The zero value is empty
// and ready; it is not safe for concurrent use (each worker keeps its own
// and they are merged).
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    time.Duration
}

var logGrowth = math.Log(histGrowth)

func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	return min(int(math.Log(us)/logGrowth)+1, histBuckets-1)
}

// upper is the largest latency bucket b holds.
func upper(b int) time.Duration {
	return time.Duration(math.Pow(histGrowth, float64(b)) * float64(time.Microsecond))
}

// Add records one latency.
func (h *Histogram) Add(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
	h.max = max(h.max, d)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count is the number of latencies recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest latency recorded.
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile returns the latency below which a fraction q (0..1) of the
// recorded ones fall: the upper edge of its bucket, never above Max. It is 0
// for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(upper(b), h.max)
		}
	}
	return h.max
}
