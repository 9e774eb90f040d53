package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// Histogram geometry: values below 2*subCount nanoseconds get one bucket
// each; above that every power of two is split into subCount equal buckets,
// so a bucket is at most 1/subCount (0.8%) of its lower bound wide and the
// midpoint reported by Quantile is within 0.4% of any value in it.
const (
	subBits    = 7
	subCount   = 1 << subBits
	maxBits    = 40 // values are clamped to 2^40-1 ns, about 18 minutes
	maxValue   = 1<<maxBits - 1
	numBuckets = (maxBits-subBits)*subCount + subCount
)

// Histogram is a fixed log-linear latency histogram (HDR style). Record does
// not allocate. The zero value is empty and ready to use; it is about 35 KiB,
// so allocate it once (new) rather than copying it around. It is not safe for
// concurrent use: give each goroutine its own and Merge them at the end.
type Histogram struct {
	counts   [numBuckets]uint64
	n        uint64
	sum      uint64
	min, max int64
}

func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - subBits - 1
	return e<<subBits + int(v>>e)
}

// bucketRange returns the lowest value in bucket i and the bucket's width.
func bucketRange(i int) (low, width int64) {
	if i < subCount {
		return int64(i), 1
	}
	e := i>>subBits - 1
	m := int64(i&(subCount-1) | subCount)
	return m << e, 1 << e
}

// Record adds one observation. Negative durations count as 0 and durations
// above about 18 minutes are clamped.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	} else if v > maxValue {
		v = maxValue
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += uint64(v)
}

// Merge adds all observations of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.n }

// Min returns the smallest observation exactly (0 if empty).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max returns the largest observation exactly (0 if empty).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the exact mean (0 if empty).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

// Quantile returns the value at quantile q (0.5 for the median, 0.999 for
// p99.9): the midpoint of the bucket holding the ceil(q*n)-th smallest
// observation, clamped to [Min, Max]. It is within 0.4% of the exact value;
// Quantile(1) is Max exactly.
// An empty histogram returns 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	if rank >= h.n {
		return time.Duration(h.max)
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			low, width := bucketRange(i)
			v := low + width/2
			v = max(v, h.min)
			v = min(v, h.max)
			return time.Duration(v)
		}
	}
	return time.Duration(h.max) // unreachable: cum reaches n
}
