package retry

import (
	"sync"
	"sync/atomic"
	"time"
)

// BudgetConfig configures a Budget; zero fields mean the defaults.
type BudgetConfig struct {
	// Ratio is the share of calls that may be retries. Default 0.1.
	Ratio float64
	// MinPerSecond is the number of retries allowed per second whatever
	// the traffic, so that quiet clients can still retry. Default 10.
	MinPerSecond float64
	// Window is how far back calls and retries are counted. Default 10s.
	Window time.Duration
	// Clock tells the time. Default: the system clock.
	Clock Clock
}

// Budget limits retries to Ratio of the calls seen in the window plus
// MinPerSecond × window: when a dependency fails outright, the calls it
// receives grow by at most that much instead of multiplying by the attempt
// count. A Budget may be shared by several policies. Safe for concurrent use:
// counting a call is a few atomic operations, so that every call through a
// busy policy does not queue on a lock; deciding a retry takes a lock.
type Budget struct {
	cfg     BudgetConfig
	mu      sync.Mutex // serialises retry decisions
	slot    time.Duration
	buckets [10]budgetBucket
}

// budgetBucket counts one slot of the window. A bucket is reused for a
// later slot by whoever first sees it stale; a count racing that reset may
// be lost, once a slot, which the budget's accuracy does not notice.
type budgetBucket struct {
	start   atomic.Int64 // UnixNano of the slot's start
	calls   atomic.Int64
	retries atomic.Int64
}

// NewBudget returns a Budget.
func NewBudget(cfg BudgetConfig) *Budget {
	if cfg.Ratio <= 0 {
		cfg.Ratio = 0.1
	}
	if cfg.MinPerSecond <= 0 {
		cfg.MinPerSecond = 10
	}
	if cfg.Window <= 0 {
		cfg.Window = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	b := &Budget{cfg: cfg}
	b.slot = cfg.Window / time.Duration(len(b.buckets))
	return b
}

// bucket returns the bucket of now's slot, cleared if it held an older one.
func (b *Budget) bucket(now time.Time) *budgetBucket {
	start := now.Truncate(b.slot).UnixNano()
	bk := &b.buckets[int(start/int64(b.slot))%len(b.buckets)]
	if s := bk.start.Load(); s != start && bk.start.CompareAndSwap(s, start) {
		bk.calls.Store(0)
		bk.retries.Store(0)
	}
	return bk
}

// totals sums the buckets inside the window.
func (b *Budget) totals(now time.Time) (calls, retries float64) {
	n := now.UnixNano()
	for i := range b.buckets {
		bk := &b.buckets[i]
		if time.Duration(n-bk.start.Load()) < b.cfg.Window {
			calls += float64(bk.calls.Load())
			retries += float64(bk.retries.Load())
		}
	}
	return calls, retries
}

func (b *Budget) recordCall() { b.recordCallAt(b.cfg.Clock.Now()) }

// recordCallFor records a call that began at start when the budget runs on
// the system clock, saving a clock read; otherwise at its clock's now.
func (b *Budget) recordCallFor(start time.Time) {
	if _, system := b.cfg.Clock.(systemClock); system && !start.IsZero() {
		b.recordCallAt(start)
		return
	}
	b.recordCall()
}

func (b *Budget) recordCallAt(now time.Time) { b.bucket(now).calls.Add(1) }

// allowRetry spends one retry if the budget has one.
func (b *Budget) allowRetry() bool {
	now := b.cfg.Clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.bucket(now)
	calls, retries := b.totals(now)
	if retries+1 > b.cfg.Ratio*calls+b.cfg.MinPerSecond*b.cfg.Window.Seconds() {
		return false
	}
	bk.retries.Add(1)
	return true
}
