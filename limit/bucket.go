package limit

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// Clock tells the time. Tests pass a fake one; nil means the system clock.
type Clock interface {
	Now() time.Time
}

// since returns the time elapsed since epoch on clock c, in nanoseconds.
// The system clock path avoids the interface call and reads the monotonic
// clock.
func since(c Clock, epoch time.Time) int64 {
	if c == nil {
		return int64(time.Since(epoch))
	}
	return int64(c.Now().Sub(epoch))
}

func epochOf(c Clock) time.Time {
	if c == nil {
		return time.Now()
	}
	return c.Now()
}

// TokenBucket admits calls at a steady rate with bursts up to a size. It is
// lock free: the whole state is one atomic "theoretical arrival time", as
// in the generic cell rate algorithm (GCRA), so Allow costs one clock read
// and one compare-and-swap, and never allocates.
//
// A TokenBucket is safe for concurrent use.
type TokenBucket struct {
	tat       atomic.Int64 // theoretical arrival time of the next call, ns since epoch
	interval  int64        // ns between tokens
	tolerance int64        // burst × interval
	rate      float64
	burst     int
	clock     Clock
	epoch     time.Time
}

// NewTokenBucket returns a bucket that refills rate tokens a second and
// holds at most burst; it starts full. A nil clock means the system clock.
// It panics when rate is not positive and finite, or burst is less than 1,
// or burst tokens take longer than about 140 years to refill; Config
// validation reports those as errors instead.
func NewTokenBucket(rate float64, burst int, clock Clock) *TokenBucket {
	return newTokenBucket(rate, burst, clock, epochOf(clock))
}

func newTokenBucket(rate float64, burst int, clock Clock, epoch time.Time) *TokenBucket {
	if err := checkRate(rate, burst); err != nil {
		panic("limit: NewTokenBucket: " + err.Error())
	}
	interval := int64(math.Round(1e9 / rate))
	if interval < 1 {
		interval = 1
	}
	return &TokenBucket{
		interval:  interval,
		tolerance: interval * int64(burst),
		rate:      rate,
		burst:     burst,
		clock:     clock,
		epoch:     epoch,
	}
}

// checkRate reports why rate and burst cannot make a bucket, naming the
// fields as a Rate document spells them.
func checkRate(rate float64, burst int) error {
	switch {
	case !(rate > 0) || math.IsInf(rate, 0):
		return fmt.Errorf("qps must be > 0, not %v", rate)
	case burst < 1:
		return fmt.Errorf("burst must be >= 1, not %d", burst)
	case float64(burst)*(1e9/rate) > 1<<62:
		return fmt.Errorf("burst %d at qps %v takes too long to refill", burst, rate)
	}
	return nil
}

// Rate returns the tokens added per second.
func (b *TokenBucket) Rate() float64 { return b.rate }

// Burst returns the bucket's size.
func (b *TokenBucket) Burst() int { return b.burst }

// Allow takes a token if one is there and reports whether it did.
func (b *TokenBucket) Allow() bool {
	_, ok := b.Take()
	return ok
}

// AllowAt is Allow at now, a time the caller read already (for several
// limits, or for a call it times anyway), which saves a clock read per
// token: the bucket reads the clock only to confirm a refusal. now should
// come from the bucket's clock.
func (b *TokenBucket) AllowAt(now time.Time) bool {
	_, ok := b.take(int64(now.Sub(b.epoch)))
	return ok
}

// Take takes a token if one is there. When none is, it takes nothing and
// returns how long until one will be.
func (b *TokenBucket) Take() (retryAfter time.Duration, ok bool) {
	return b.take(since(b.clock, b.epoch))
}

// take is Take at now, ns since b.epoch. now may be a little old (read once
// for several limits, or before losing a race): before turning a call
// away, take reads the clock again, so that a stale now never refuses a
// call that is due.
func (b *TokenBucket) take(now int64) (time.Duration, bool) {
	fresh := false
	for {
		old := b.tat.Load()
		tat := max(old, now)
		next := tat + b.interval
		if over := next - now - b.tolerance; over > 0 {
			if !fresh {
				now, fresh = since(b.clock, b.epoch), true
				continue
			}
			return time.Duration(over), false
		}
		if b.tat.CompareAndSwap(old, next) {
			return 0, true
		}
		// Lost a race: try again at the same now; a refusal still reads
		// the clock afresh first.
	}
}

// RetryAfter returns how long until a token will be there: zero when one
// is there now.
func (b *TokenBucket) RetryAfter() time.Duration {
	tat := b.tat.Load()
	now := since(b.clock, b.epoch)
	if tat < now {
		tat = now
	}
	if over := tat + b.interval - now - b.tolerance; over > 0 {
		return time.Duration(over)
	}
	return 0
}
