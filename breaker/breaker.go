package breaker

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/status"
)

// State is the state of a Classic breaker.
type State uint8

// The three states of a Classic breaker.
const (
	Closed State = iota
	Open
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// ErrOpen is matched by errors.Is on every error a Breaker returns to reject
// a call. The error itself has code Unavailable and names the breaker and its
// state.
var ErrOpen = errors.New("breaker: open")

// The state word packs the state (bits 0–1), the probes issued in this
// half-open period (bits 2–22) and a generation that grows on every
// transition (bits 23–63), so a probe is issued by one CAS and a stale
// Token is recognised.
const (
	stateMask  = 3
	probeShift = 2
	probeMask  = (1<<21 - 1) << probeShift
	genShift   = 23
)

func stateOf(w uint64) State { return State(w & stateMask) }
func genOf(w uint64) uint64  { return w >> genShift }
func probesOf(w uint64) int  { return int(w&probeMask) >> probeShift }

// Token is what Allow hands out and Record takes back: it tells Record
// whether the call was a half-open probe and of which period. It is a plain
// value; passing it costs nothing. The zero Token stands for a call that was
// not a probe.
type Token struct {
	w     uint64
	probe bool
}

// Breaker is a circuit breaker for one target: a service method or an
// instance. It is safe for concurrent use. Every Allow that returns a nil
// error must be followed by exactly one Record with its Token.
type Breaker struct {
	word      atomic.Uint64
	openUntil atomic.Int64 // UnixNano at which an open breaker may half-open
	win       *window

	name string
	cfg  Config

	errOpen, errHalfOpen, errThrottled error

	mu       sync.Mutex // serialises transitions and the fields below
	trips    int        // consecutive trips, for the sleep doubling
	probesOK int        // successful probes in this half-open period
	baseline float64    // EWMA of healthy P95, ns; 0 until learnt
}

// New returns a Breaker named name (used in errors and callbacks), with cfg
// checked and its zero fields set to their defaults. The error names the
// offending field.
func New(name string, cfg Config) (*Breaker, error) {
	c, err := cfg.build()
	if err != nil {
		return nil, err
	}
	return newBreaker(name, c), nil
}

func newBreaker(name string, c Config) *Breaker {
	b := &Breaker{name: name, cfg: c, win: newWindow(c.Window, c.Buckets)}
	reject := func(what string) error {
		return status.Wrap(codes.Unavailable, fmt.Sprintf("breaker: %s is %s", name, what), ErrOpen)
	}
	b.errOpen = reject(Open.String())
	b.errHalfOpen = reject(HalfOpen.String())
	b.errThrottled = reject("throttling")
	return b
}

// Name returns the breaker's name.
func (b *Breaker) Name() string { return b.name }

// State returns the current state. An open breaker whose sleep is over
// reports Open until the next Allow moves it to HalfOpen. An SRE breaker is
// always Closed.
func (b *Breaker) State() State { return stateOf(b.word.Load()) }

// Allow asks whether a call may go ahead. On nil error the caller makes the
// call and then passes the Token to Record. A rejection is an Unavailable
// status error matching ErrOpen.
func (b *Breaker) Allow() (Token, error) {
	if b.cfg.Mode == SRE {
		return b.allowSRE()
	}
	for {
		w := b.word.Load()
		switch stateOf(w) {
		case Closed:
			return Token{}, nil
		case Open:
			now := b.cfg.Clock.Now().UnixNano()
			if now < b.openUntil.Load() {
				return Token{}, b.errOpen
			}
			b.halfOpen(w, now)
		case HalfOpen:
			if probesOf(w) >= b.cfg.Probes {
				// Probes whose Record never came would hold the breaker
				// half-open for ever; after MaxSleep count them as failed.
				now := b.cfg.Clock.Now()
				if now.UnixNano()-b.openUntil.Load() < int64(b.cfg.MaxSleep) {
					return Token{}, b.errHalfOpen
				}
				b.reopenLost(w, now)
				continue
			}
			if b.word.CompareAndSwap(w, w+1<<probeShift) {
				return Token{w: w, probe: true}, nil
			}
		}
	}
}

func (b *Breaker) allowSRE() (Token, error) {
	e := b.win.epochOf(b.cfg.Clock.Now())
	total, failures, rejected := b.win.counts(e)
	requests := float64(total + rejected)
	accepts := float64(total - failures)
	p := (requests - b.cfg.SREK*accepts) / (requests + 1)
	if p > 0 && b.cfg.Rand() < p {
		bk, _ := b.win.slot(e)
		bk.rejected.Add(1)
		return Token{}, b.errThrottled
	}
	return Token{}, nil
}

// Record reports the outcome of a call Allow let through: its error (nil on
// success) and how long it took. It reads the Clock once; a caller that has
// just read it to measure the latency should use RecordAt.
func (b *Breaker) Record(tok Token, err error, latency time.Duration) {
	b.RecordAt(tok, err, latency, b.cfg.Clock.Now())
}

// RecordAt is Record for a call that ended at now, as read from the
// Breaker's Clock. It spares a clock read, which costs more than the rest
// of Allow and Record together on some machines.
func (b *Breaker) RecordAt(tok Token, err error, latency time.Duration, now time.Time) {
	fail := err != nil && b.cfg.IsFailure(err)
	if tok.probe {
		b.probeDone(tok, fail, now)
		return
	}
	if b.cfg.Mode == Classic && stateOf(b.word.Load()) != Closed {
		return // a call from before the trip; the window restarts on close
	}
	e := b.win.epochOf(now)
	bk, rotated := b.win.slot(e)
	bk.total.Add(1)
	bk.hist[histIndex(latency)].Add(1)
	if fail {
		bk.failures.Add(1)
	}
	if b.cfg.Mode == SRE {
		return
	}
	if rotated {
		b.evaluate(e, now, true)
	} else if fail {
		b.evaluate(e, now, false)
	}
}

// evaluate checks the window ending at epoch e; withLatency also checks
// the P95 and learns the baseline (once per bucket rotation).
func (b *Breaker) evaluate(e int64, now time.Time, withLatency bool) {
	total, failures, _ := b.win.counts(e)
	if total < int64(b.cfg.MinRequests) {
		return
	}
	unhealthy := float64(failures) >= b.cfg.ErrorRate*float64(total)
	if !withLatency {
		if unhealthy {
			b.trip(now)
		}
		return
	}
	if unhealthy {
		b.trip(now)
		return
	}
	if b.cfg.LatencyFactor < 0 {
		return
	}
	p95, n := b.win.p95(e)
	if n < int64(b.cfg.MinRequests) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if stateOf(b.word.Load()) != Closed {
		return
	}
	v := float64(p95)
	switch {
	case b.baseline == 0:
		b.baseline = v
	case v > b.cfg.LatencyFactor*b.baseline && p95 > b.cfg.LatencyFloor:
		b.tripLocked(now)
	default:
		a := b.cfg.BaselineWeight
		b.baseline = (1-a)*b.baseline + a*v
	}
}

// Baseline returns the learnt healthy P95 latency, 0 until learnt.
func (b *Breaker) Baseline() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return time.Duration(b.baseline)
}

func (b *Breaker) trip(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if stateOf(b.word.Load()) == Closed {
		b.tripLocked(now)
	}
}

// tripLocked opens the breaker for the doubled sleep.
func (b *Breaker) tripLocked(now time.Time) {
	b.trips++
	sleep := b.cfg.BaseSleep
	for i := 1; i < b.trips && sleep < b.cfg.MaxSleep; i++ {
		sleep *= 2
	}
	sleep = min(sleep, b.cfg.MaxSleep)
	b.openUntil.Store(now.Add(sleep).UnixNano())
	b.setLocked(Open)
}

func (b *Breaker) halfOpen(w uint64, now int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.word.Load() != w || now < b.openUntil.Load() {
		return // someone else moved it
	}
	b.probesOK = 0
	b.setLocked(HalfOpen)
}

func (b *Breaker) reopenLost(w uint64, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if genOf(b.word.Load()) == genOf(w) {
		b.tripLocked(now)
	}
}

func (b *Breaker) probeDone(tok Token, fail bool, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	w := b.word.Load()
	if genOf(w) != genOf(tok.w) || stateOf(w) != HalfOpen {
		return // the period this probe belonged to is over
	}
	if fail {
		b.tripLocked(now)
		return
	}
	b.probesOK++
	if b.probesOK >= b.cfg.Probes {
		b.trips = 0
		b.win.invalidate()
		b.setLocked(Closed)
	}
}

// setLocked moves to state to in a new generation and reports the change.
func (b *Breaker) setLocked(to State) {
	w := b.word.Load()
	b.word.Store((genOf(w)+1)<<genShift | uint64(to))
	if from := stateOf(w); b.cfg.OnStateChange != nil && from != to {
		b.cfg.OnStateChange(b.name, from, to)
	}
}
