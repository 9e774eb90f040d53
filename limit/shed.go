package limit

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicerpc/sluice/config"
)

// ShedConfig tunes a Shedder. The zero value of each field means its
// default.
type ShedConfig struct {
	// Window is how far back the shedder looks for the best throughput and
	// the lowest latency. Zero means 10s.
	Window config.Duration `json:"window,omitempty" yaml:"window,omitempty"`
	// Buckets is how many slices Window is cut into; the shedder's
	// estimate moves on once per slice. Zero means 100.
	Buckets int `json:"buckets,omitempty" yaml:"buckets,omitempty"`
	// CPUThreshold is the CPU usage, from 0 to 1, at and above which the
	// shedder sheds when it has a CPU input. Zero means 0.8.
	CPUThreshold float64 `json:"cpuThreshold,omitempty" yaml:"cpuThreshold,omitempty"`
	// CoolDown is how long after shedding for high CPU the shedder goes on
	// shedding on its estimate alone, so that it does not flap as CPU
	// usage dips. Zero means 1s.
	CoolDown config.Duration `json:"coolDown,omitempty" yaml:"coolDown,omitempty"`
	// CPU returns the process's current CPU usage from 0 to 1. It is
	// called on the call path when the in-flight count is over the
	// estimate, so it must be cheap: read a value sampled in the
	// background. Nil means no CPU input: shed on the estimate alone.
	CPU func() float64 `json:"-" yaml:"-"`
	// Clock tells the time. Nil means the system clock. In a Config,
	// Config.Clock is used instead.
	Clock Clock `json:"-" yaml:"-"`
}

func (c *ShedConfig) defaults() {
	if c.Window == 0 {
		c.Window = config.Duration(10 * time.Second)
	}
	if c.Buckets == 0 {
		c.Buckets = 100
	}
	if c.CPUThreshold == 0 {
		c.CPUThreshold = 0.8
	}
	if c.CoolDown == 0 {
		c.CoolDown = config.Duration(time.Second)
	}
}

// check validates a defaulted config; path prefixes field names in errors.
func (c *ShedConfig) check(path string) error {
	switch {
	case c.Window < 0:
		return fmt.Errorf("limit: %swindow must be >= 0, not %v", path, c.Window)
	case c.Buckets < 0:
		return fmt.Errorf("limit: %sbuckets must be >= 0, not %d", path, c.Buckets)
	case time.Duration(c.Window)/time.Duration(c.Buckets) < time.Millisecond:
		return fmt.Errorf("limit: %swindow %v cut into %d buckets makes buckets shorter than 1ms", path, c.Window, c.Buckets)
	case !(c.CPUThreshold > 0 && c.CPUThreshold <= 1):
		return fmt.Errorf("limit: %scpuThreshold must be in (0, 1], not %v", path, c.CPUThreshold)
	case c.CoolDown < 0:
		return fmt.Errorf("limit: %scoolDown must be >= 0, not %v", path, c.CoolDown)
	}
	return nil
}

// ErrShed is the error of a call the Shedder turned away. It matches
// ErrLimited under errors.Is.
var ErrShed = fmt.Errorf("limit: load shed: %w", ErrLimited)

// Shedder is adaptive load shedding in the manner of BBR congestion
// control (as Kratos and go-zero do it). Over a rolling window it tracks
// the most calls completed in one bucket (maxPass) and the lowest average
// latency of a bucket (minRT); their product over the bucket length is the
// number of calls the server can have in flight without queueing:
//
//	capacity = ceil(maxPass × minRT / bucket)
//
// A call is shed when more than capacity calls are already in flight
// (and more than one):
//
//   - without a CPU input, on that estimate alone;
//   - with one, only while CPU usage is at or above CPUThreshold, or
//     within CoolDown after the last call shed for high CPU.
//
// Until a full bucket with completed calls lies in the window (after start,
// or after a quiet spell longer than the window) there is no estimate and
// nothing is shed.
//
// A Shedder is safe for concurrent use. Allow and Done do not allocate.
type Shedder struct {
	clock     Clock
	epoch     time.Time
	bucketDur int64
	threshold float64
	coolDown  int64
	cpu       atomic.Pointer[func() float64]

	inFlight atomic.Int64
	lastShed atomic.Int64 // ns since epoch + 1 of the last CPU shed; 0 for never
	capAt    atomic.Int64 // bucket number + 1 that capacity was computed in
	capacity atomic.Int64 // 0 while there is no estimate

	mu      sync.Mutex
	last    int64 // bucket number that buckets[last%len] holds
	buckets []shedBucket
}

type shedBucket struct {
	pass  int64 // calls completed
	rtSum int64 // their summed latency, ns
}

// Token is an admitted call's ticket; hand it back to Done.
type Token struct {
	start int64
}

// NewShedder returns a Shedder, or an error naming the bad field.
func NewShedder(cfg ShedConfig) (*Shedder, error) {
	cfg.defaults()
	if err := cfg.check(""); err != nil {
		return nil, err
	}
	return newShedder(cfg, epochOf(cfg.Clock)), nil
}

func newShedder(cfg ShedConfig, epoch time.Time) *Shedder {
	s := &Shedder{
		clock:     cfg.Clock,
		epoch:     epoch,
		bucketDur: int64(time.Duration(cfg.Window) / time.Duration(cfg.Buckets)),
		threshold: cfg.CPUThreshold,
		coolDown:  int64(cfg.CoolDown),
		buckets:   make([]shedBucket, cfg.Buckets),
	}
	s.setCPU(cfg.CPU)
	return s
}

func (s *Shedder) setCPU(f func() float64) {
	if f == nil {
		s.cpu.Store(nil)
		return
	}
	s.cpu.Store(&f)
}

// Allow admits a call, or returns ErrShed. An admitted call must be
// followed by Done with the returned Token.
func (s *Shedder) Allow() (Token, error) {
	return s.allow(since(s.clock, s.epoch))
}

func (s *Shedder) allow(now int64) (Token, error) {
	if s.shed(now) {
		return Token{}, ErrShed
	}
	s.inFlight.Add(1)
	return Token{start: now}, nil
}

func (s *Shedder) shed(now int64) bool {
	in := s.inFlight.Load()
	if in <= 1 {
		return false
	}
	c := s.capacityAt(now / s.bucketDur)
	if c == 0 || in <= c {
		return false
	}
	cpu := s.cpu.Load()
	if cpu == nil {
		return true
	}
	if (*cpu)() >= s.threshold {
		s.lastShed.Store(now + 1)
		return true
	}
	last := s.lastShed.Load()
	return last != 0 && now-(last-1) < s.coolDown
}

// Done records the end of a call admitted by Allow.
func (s *Shedder) Done(t Token) { s.done(t, since(s.clock, s.epoch)) }

func (s *Shedder) done(t Token, now int64) {
	s.inFlight.Add(-1)
	rt := now - t.start
	if rt < 0 {
		rt = 0
	}
	s.mu.Lock()
	s.advance(now / s.bucketDur)
	b := &s.buckets[(now/s.bucketDur)%int64(len(s.buckets))]
	b.pass++
	b.rtSum += rt
	s.mu.Unlock()
}

// InFlight returns the number of calls admitted and not yet done.
func (s *Shedder) InFlight() int { return int(s.inFlight.Load()) }

// Capacity returns the current estimate of how many calls can be in
// flight, or 0 when there is none yet.
func (s *Shedder) Capacity() int {
	return int(s.capacityAt(since(s.clock, s.epoch) / s.bucketDur))
}

// capacityAt returns the estimate in bucket bn, computing it once per bucket.
func (s *Shedder) capacityAt(bn int64) int64 {
	if s.capAt.Load() == bn+1 {
		return s.capacity.Load()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.capAt.Load() == bn+1 {
		return s.capacity.Load()
	}
	s.advance(bn)
	n := int64(len(s.buckets))
	var maxPass, minRT int64
	for i := bn - n + 1; i < bn; i++ { // the window without the current, partial bucket
		if i < 0 {
			continue
		}
		b := s.buckets[i%n]
		if b.pass == 0 {
			continue
		}
		maxPass = max(maxPass, b.pass)
		rt := (b.rtSum + b.pass - 1) / b.pass
		if minRT == 0 || rt < minRT {
			minRT = rt
		}
	}
	var c int64
	if maxPass > 0 {
		c = int64(math.Ceil(float64(maxPass) * float64(max(minRT, 1)) / float64(s.bucketDur)))
	}
	s.capacity.Store(c)
	s.capAt.Store(bn + 1)
	return c
}

// advance clears the buckets between the last one written and bn. s.mu
// must be held.
func (s *Shedder) advance(bn int64) {
	if bn <= s.last {
		return
	}
	n := int64(len(s.buckets))
	if bn-s.last >= n {
		clear(s.buckets)
	} else {
		for i := s.last + 1; i <= bn; i++ {
			s.buckets[i%n] = shedBucket{}
		}
	}
	s.last = bn
}
