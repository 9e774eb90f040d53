package breaker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/status"
)

// Mode selects how a Breaker decides to reject calls.
type Mode uint8

const (
	// Classic is the three-state breaker: closed, open, half-open.
	Classic Mode = iota
	// SRE is Google-SRE adaptive throttling: each call is rejected with
	// probability max(0, (requests − K×accepts) / (requests + 1)) over the
	// window. It has no states; State always reports Closed.
	SRE
)

func (m Mode) String() string {
	switch m {
	case Classic:
		return "classic"
	case SRE:
		return "sre"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Clock tells the time. Tests inject a fake one.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Config configures a Breaker. The zero value of every field means its
// default, given in the field's comment.
type Config struct {
	// Window is the length of the sliding window. Default 10s.
	Window time.Duration
	// Buckets is the number of buckets the window is cut into; the window
	// slides one bucket at a time. Default 10. Window/Buckets must be at
	// least 1ms.
	Buckets int

	// ErrorRate is the failure ratio (0, 1] over the window at which a
	// Classic breaker trips. Default 0.5.
	ErrorRate float64
	// MinRequests is the number of calls the window must hold before the
	// error rate or the latency can trip the breaker. Default 20.
	MinRequests int
	// LatencyFactor trips a Classic breaker when the window's P95 latency
	// exceeds LatencyFactor × the baseline P95. The baseline is an EWMA
	// (weight BaselineWeight) of the P95 of healthy windows (at least
	// MinRequests calls, error rate below ErrorRate, P95 within the factor),
	// evaluated once per bucket. Default 3.0; a negative value turns the
	// latency trip off.
	LatencyFactor float64
	// LatencyFloor is the P95 below which the latency trip never fires,
	// however small the baseline. Default 1ms.
	LatencyFloor time.Duration
	// BaselineWeight is the weight of the newest healthy window in the
	// baseline EWMA, in (0, 1]. Default 0.1.
	BaselineWeight float64

	// BaseSleep is how long a Classic breaker stays open after its first
	// trip; each consecutive trip (a failed half-open probe) doubles it.
	// Default 5s.
	BaseSleep time.Duration
	// MaxSleep caps the doubled sleep. Default 120s.
	MaxSleep time.Duration
	// Probes is the number of calls a half-open breaker lets through; all
	// of them must succeed for it to close, and one failure reopens it.
	// Probes not recorded within MaxSleep count as failed. Default 3.
	Probes int

	// IsFailure says whether a call's non-nil error counts against the
	// backend; a nil error is always a success.
	// Default DefaultIsFailure: Unavailable, DeadlineExceeded, Internal,
	// ResourceExhausted and Unknown count; nil and caller errors
	// (InvalidArgument, NotFound, ...) do not.
	IsFailure func(err error) bool

	// Mode selects Classic or SRE. Default Classic.
	Mode Mode
	// SREK is the K of SRE mode: the backend may be sent K times the calls
	// it accepts. Default 1.5; must be ≥ 1.
	SREK float64
	// Rand returns a number in [0, 1) for SRE mode's rejection draw; it
	// must be safe for concurrent use. Default math/rand/v2.Float64.
	Rand func() float64

	// OnStateChange, if set, is called on every state change of a Classic
	// breaker, in order, while the breaker holds its transition lock: it
	// must not call the breaker's Allow. Default none.
	OnStateChange func(name string, from, to State)
	// Clock tells the time: bucket boundaries, open sleeps and the
	// Middleware's latencies. Default the system clock.
	Clock Clock
}

// DefaultIsFailure is the default Config.IsFailure: it counts Unavailable,
// DeadlineExceeded, Internal, ResourceExhausted and Unknown (which includes
// errors that carry no status).
func DefaultIsFailure(err error) bool {
	if err == nil {
		return false
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal,
		codes.ResourceExhausted, codes.Unknown:
		return true
	}
	return false
}

// errConfig is wrapped by every configuration error.
var errConfig = errors.New("breaker: invalid config")

// build fills in defaults and validates; it is the one place defaults live.
func (c Config) build() (Config, error) {
	if c.Window == 0 {
		c.Window = 10 * time.Second
	}
	if c.Buckets == 0 {
		c.Buckets = 10
	}
	if c.ErrorRate == 0 {
		c.ErrorRate = 0.5
	}
	if c.MinRequests == 0 {
		c.MinRequests = 20
	}
	if c.LatencyFactor == 0 {
		c.LatencyFactor = 3.0
	}
	if c.LatencyFloor == 0 {
		c.LatencyFloor = time.Millisecond
	}
	if c.BaselineWeight == 0 {
		c.BaselineWeight = 0.1
	}
	if c.BaseSleep == 0 {
		c.BaseSleep = 5 * time.Second
	}
	if c.MaxSleep == 0 {
		c.MaxSleep = 120 * time.Second
	}
	if c.Probes == 0 {
		c.Probes = 3
	}
	if c.IsFailure == nil {
		c.IsFailure = DefaultIsFailure
	}
	if c.SREK == 0 {
		c.SREK = 1.5
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("%w: %s = %v, want %s", errConfig, field, v, want)
	}
	switch {
	case c.Window < 0:
		return c, bad("Window", c.Window, "> 0")
	case c.Buckets < 0 || c.Buckets > 1<<16:
		return c, bad("Buckets", c.Buckets, "in [1, 65536]")
	case c.Window/time.Duration(c.Buckets) < time.Millisecond:
		return c, bad("Window/Buckets", c.Window/time.Duration(c.Buckets), ">= 1ms")
	case !(c.ErrorRate > 0 && c.ErrorRate <= 1):
		return c, bad("ErrorRate", c.ErrorRate, "in (0, 1]")
	case c.MinRequests < 0:
		return c, bad("MinRequests", c.MinRequests, ">= 1")
	case c.LatencyFactor > 0 && c.LatencyFactor <= 1:
		return c, bad("LatencyFactor", c.LatencyFactor, "> 1 (or < 0 for off)")
	case !(c.BaselineWeight > 0 && c.BaselineWeight <= 1):
		return c, bad("BaselineWeight", c.BaselineWeight, "in (0, 1]")
	case c.BaseSleep < 0:
		return c, bad("BaseSleep", c.BaseSleep, "> 0")
	case c.MaxSleep < c.BaseSleep:
		return c, bad("MaxSleep", c.MaxSleep, ">= BaseSleep")
	case c.Probes < 0 || c.Probes > 1<<20:
		return c, bad("Probes", c.Probes, "in [1, 1048576]")
	case c.Mode != Classic && c.Mode != SRE:
		return c, bad("Mode", c.Mode, "Classic or SRE")
	case !(c.SREK >= 1):
		return c, bad("SREK", c.SREK, ">= 1")
	}
	return c, nil
}
