package breaker

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Latency histogram: log-linear over microseconds, 4 bins per power of two
// (relative error ≤ 12.5%), values from 0 to about 2^31 µs (35 min).
const (
	subBits  = 2
	subBins  = 1 << subBits
	maxExp   = 31
	histBins = (maxExp-1)*subBins + subBins
)

// histIndex maps a latency to its bin.
func histIndex(d time.Duration) int {
	v := uint64(d / time.Microsecond)
	if d < 0 {
		v = 0
	}
	if v < subBins {
		return int(v)
	}
	exp := bits.Len64(v) - 1
	if exp > maxExp {
		return histBins - 1
	}
	sub := int(v>>(exp-subBits)) & (subBins - 1)
	return (exp-1)*subBins + sub
}

// histValue is the midpoint of bin i.
func histValue(i int) time.Duration {
	if i < subBins {
		return time.Duration(i) * time.Microsecond
	}
	exp := i/subBins + 1
	sub := uint64(i % subBins)
	width := uint64(1) << (exp - subBits)
	lo := (subBins + sub) * width
	return time.Duration(lo+width/2) * time.Microsecond
}

// bucket holds one slice of the window. epoch is the bucket's number
// (time / bucket length); counters belong to that epoch only.
type bucket struct {
	epoch    atomic.Int64
	_        [56]byte // keep epoch (read by all) off the counters' line
	total    atomic.Int64
	failures atomic.Int64
	rejected atomic.Int64
	hist     [histBins]atomic.Uint32
}

func (b *bucket) reset() {
	b.total.Store(0)
	b.failures.Store(0)
	b.rejected.Store(0)
	for i := range b.hist {
		b.hist[i].Store(0)
	}
}

// window is a lock-free ring of buckets. A writer that finds its slot
// holding an older epoch claims it by CAS and clears it; samples that race
// with the clearing may be lost, which a statistical window tolerates.
//
// The ring has a power-of-two length of at least n buckets, so a slot is
// found with a mask; only the newest n epochs are live.
type window struct {
	buckets []bucket
	mask    uint64
	n       int64        // live buckets
	width   int64        // bucket length in ns
	cur     atomic.Int64 // last epoch computed, so most calls skip a division
}

const staleEpoch = -1 << 62

func newWindow(w time.Duration, n int) *window {
	size := 1
	for size < n {
		size *= 2
	}
	win := &window{
		buckets: make([]bucket, size),
		mask:    uint64(size - 1),
		n:       int64(n),
		width:   int64(w) / int64(n),
	}
	win.invalidate()
	return win
}

// invalidate makes every bucket stale, emptying the window.
func (w *window) invalidate() {
	for i := range w.buckets {
		w.buckets[i].epoch.Store(staleEpoch)
	}
}

func (w *window) epochOf(now time.Time) int64 {
	ns := now.UnixNano()
	e := w.cur.Load()
	if start := e * w.width; ns >= start && ns-start < w.width {
		return e
	}
	e = ns / w.width
	w.cur.Store(e)
	return e
}

// slot returns the bucket for epoch e and whether this call rotated it in.
func (w *window) slot(e int64) (*bucket, bool) {
	b := &w.buckets[uint64(e)&w.mask]
	for {
		old := b.epoch.Load()
		if old >= e {
			return b, false // current, or a late sample landing in a newer bucket
		}
		if b.epoch.CompareAndSwap(old, e) {
			b.reset()
			return b, true
		}
	}
}

// live reports whether bucket epoch be is inside the window ending at e.
func (w *window) live(be, e int64) bool {
	return be <= e && be > e-w.n
}

// counts sums the live buckets of the window ending at epoch e.
func (w *window) counts(e int64) (total, failures, rejected int64) {
	for i := range w.buckets {
		b := &w.buckets[i]
		if !w.live(b.epoch.Load(), e) {
			continue
		}
		total += b.total.Load()
		failures += b.failures.Load()
		rejected += b.rejected.Load()
	}
	return total, failures, rejected
}

// p95 merges the histograms of the live buckets and returns the 95th
// percentile latency and the number of samples.
func (w *window) p95(e int64) (time.Duration, int64) {
	var merged [histBins]int64
	var n int64
	for i := range w.buckets {
		b := &w.buckets[i]
		if !w.live(b.epoch.Load(), e) {
			continue
		}
		for j := range b.hist {
			c := int64(b.hist[j].Load())
			merged[j] += c
			n += c
		}
	}
	if n == 0 {
		return 0, 0
	}
	rank := (n*95 + 99) / 100 // ceil(0.95 n)
	var seen int64
	for j, c := range merged {
		seen += c
		if seen >= rank {
			return histValue(j), n
		}
	}
	return histValue(histBins - 1), n
}
