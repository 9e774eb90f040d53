package limit

import (
	"fmt"
	"sync/atomic"
)

// Concurrency bounds the number of calls in flight. It is safe for
// concurrent use and never allocates.
type Concurrency struct {
	n   atomic.Int64
	max atomic.Int64
}

// NewConcurrency returns a limit of max calls in flight. It panics when max
// is less than 1.
func NewConcurrency(max int) *Concurrency {
	if max < 1 {
		panic(fmt.Sprintf("limit: NewConcurrency: max must be >= 1, not %d", max))
	}
	c := &Concurrency{}
	c.max.Store(int64(max))
	return c
}

// Acquire admits a call if fewer than the maximum are in flight and
// reports whether it did. Each admitted call must be followed by Release.
func (c *Concurrency) Acquire() bool {
	max := c.max.Load()
	for {
		n := c.n.Load()
		if n >= max {
			return false
		}
		if c.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release ends a call admitted by Acquire.
func (c *Concurrency) Release() { c.n.Add(-1) }

// InFlight returns the number of calls admitted and not yet released.
func (c *Concurrency) InFlight() int { return int(c.n.Load()) }

// Max returns the limit.
func (c *Concurrency) Max() int { return int(c.max.Load()) }

// setMax changes the limit; calls already in flight stay admitted.
func (c *Concurrency) setMax(max int) { c.max.Store(int64(max)) }
