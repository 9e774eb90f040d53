package retry

import (
	"sync"
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
// count. A Budget may be shared by several policies. Safe for concurrent use.
type Budget struct {
	cfg     BudgetConfig
	mu      sync.Mutex
	slot    time.Duration
	buckets [10]struct {
		start          time.Time
		calls, retries float64
	}
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

// bucket returns the current bucket, clearing it if it is stale; mu held.
func (b *Budget) bucket(now time.Time) int {
	start := now.Truncate(b.slot)
	i := int(start.UnixNano()/int64(b.slot)) % len(b.buckets)
	if !b.buckets[i].start.Equal(start) {
		b.buckets[i].start, b.buckets[i].calls, b.buckets[i].retries = start, 0, 0
	}
	return i
}

// totals sums the buckets inside the window; mu held.
func (b *Budget) totals(now time.Time) (calls, retries float64) {
	for i := range b.buckets {
		if now.Sub(b.buckets[i].start) < b.cfg.Window {
			calls += b.buckets[i].calls
			retries += b.buckets[i].retries
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

func (b *Budget) recordCallAt(now time.Time) {
	b.mu.Lock()
	b.buckets[b.bucket(now)].calls++
	b.mu.Unlock()
}

// allowRetry spends one retry if the budget has one.
func (b *Budget) allowRetry() bool {
	now := b.cfg.Clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	i := b.bucket(now)
	calls, retries := b.totals(now)
	if retries+1 > b.cfg.Ratio*calls+b.cfg.MinPerSecond*b.cfg.Window.Seconds() {
		return false
	}
	b.buckets[i].retries++
	return true
}
