// Package retry retries failed client calls: a bounded number of attempts
// with exponential backoff and jitter, on retryable codes only, never past
// the caller's deadline, within a retry budget so that retries cannot
// amplify an outage. Each attempt carries its number (callinfo.Info.Attempt,
// sent as sluice-attempt), and the client steers a retry away from the
// instances that already failed it.
//
//	r, err := retry.New(retry.Config{MaxAttempts: 3})
//	c, err := client.New(target, client.WithMiddleware(r.Middleware()))
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// Config is a retry policy. The zero value of each field means its default.
type Config struct {
	// MaxAttempts counts the first try. Default 3; 1 disables retries.
	MaxAttempts int
	// InitialBackoff is the wait before the first retry. Default 25ms.
	InitialBackoff time.Duration
	// MaxBackoff caps the wait. Default 1s.
	MaxBackoff time.Duration
	// Multiplier grows the wait after each retry. Default 2.
	Multiplier float64
	// Jitter spreads each wait uniformly over ±Jitter of it. Default 0.2.
	Jitter float64
	// Codes are the retryable codes. Default: Unavailable. An attempt cut
	// by PerTryTimeout is retried too (while the caller's deadline allows).
	Codes []codes.Code
	// PerTryTimeout bounds each attempt. Default 0: attempts share the
	// caller's deadline.
	PerTryTimeout time.Duration
	// OnRetry, when set, is called before each retry is sent, with the
	// call's info (Attempt is the try about to be made). Metrics hook it
	// here. Default none.
	OnRetry func(info *callinfo.Info)
	// Budget bounds retries across all calls through this policy. Default:
	// retries may be at most 10% of calls plus 10 per second.
	Budget *Budget
	// Clock tells the time (backoff deadlines, the budget's window).
	// Default: the system clock.
	Clock Clock
	// Sleep waits d or until ctx ends. Default: a timer. Tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Clock tells the time.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Policy is a validated Config.
type Policy struct {
	cfg       Config
	retryable [codes.Unauthenticated + 1]bool
}

// New validates cfg and fills in its defaults. Errors name the field.
func New(cfg Config) (*Policy, error) {
	switch {
	case cfg.MaxAttempts < 0:
		return nil, fmt.Errorf("retry: maxAttempts %d must not be negative", cfg.MaxAttempts)
	case cfg.InitialBackoff < 0, cfg.MaxBackoff < 0, cfg.PerTryTimeout < 0:
		return nil, errors.New("retry: initialBackoff, maxBackoff and perTryTimeout must not be negative")
	case cfg.Multiplier != 0 && cfg.Multiplier < 1:
		return nil, fmt.Errorf("retry: multiplier %v must be at least 1", cfg.Multiplier)
	case cfg.Jitter < 0 || cfg.Jitter > 1:
		return nil, fmt.Errorf("retry: jitter %v must be between 0 and 1", cfg.Jitter)
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.InitialBackoff == 0 {
		cfg.InitialBackoff = 25 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.InitialBackoff {
		return nil, fmt.Errorf("retry: maxBackoff %v is below initialBackoff %v", cfg.MaxBackoff, cfg.InitialBackoff)
	}
	if cfg.Multiplier == 0 {
		cfg.Multiplier = 2
	}
	if cfg.Jitter == 0 {
		cfg.Jitter = 0.2
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.Sleep == nil {
		cfg.Sleep = Sleep
	}
	if cfg.Budget == nil {
		cfg.Budget = NewBudget(BudgetConfig{Clock: cfg.Clock})
	}
	p := &Policy{cfg: cfg}
	cs := cfg.Codes
	if cs == nil {
		cs = []codes.Code{codes.Unavailable}
	}
	for _, c := range cs {
		if c == codes.OK || c > codes.Unauthenticated {
			return nil, fmt.Errorf("retry: codes: %v is not a retryable code", c)
		}
		p.retryable[c] = true
	}
	return p, nil
}

// Sleep waits d, or until ctx ends with ctx.Err(): Config.Sleep's
// default, and the client's wait for an injected delay.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Middleware returns the client middleware applying the policy. Place it
// outside (before) middlewares that should see each attempt.
func (p *Policy) Middleware() endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			info := callinfo.FromContext(ctx)
			if info == nil || p.cfg.MaxAttempts <= 1 {
				return next(ctx, req, resp)
			}
			return p.call(ctx, info, next, req, resp)
		}
	}
}

func (p *Policy) call(ctx context.Context, info *callinfo.Info, next endpoint.Endpoint, req, resp any) error {
	b := p.cfg.Budget
	b.recordCallFor(info.Start)
	backoff := p.cfg.InitialBackoff
	for attempt := 1; ; attempt++ {
		info.Attempt = attempt
		err, tryTimedOut := p.attempt(ctx, next, req, resp)
		if err == nil {
			return nil
		}
		code := status.Code(err)
		switch {
		case attempt >= p.cfg.MaxAttempts:
			return err
		case ctx.Err() != nil:
			return err // the caller's deadline or cancellation: never retried
		case !p.retryable[code] && !tryTimedOut:
			return err
		}
		wait := p.jittered(backoff)
		if d, ok := ctx.Deadline(); ok && !p.cfg.Clock.Now().Add(wait).Before(d) {
			return err // the retry could not finish before the caller's deadline
		}
		if !b.allowRetry() {
			return err
		}
		if info.Peer != "" {
			info.Avoid = append(info.Avoid, info.Peer)
		}
		if serr := p.cfg.Sleep(ctx, wait); serr != nil {
			return err
		}
		backoff = min(time.Duration(float64(backoff)*p.cfg.Multiplier), p.cfg.MaxBackoff)
		if f := p.cfg.OnRetry; f != nil {
			info.Attempt = attempt + 1
			f(info)
		}
	}
}

// attempt runs one try, under PerTryTimeout when set; tryTimedOut says the
// per-try timeout (not the caller's deadline) cut it.
func (p *Policy) attempt(ctx context.Context, next endpoint.Endpoint, req, resp any) (err error, tryTimedOut bool) {
	if p.cfg.PerTryTimeout <= 0 {
		return next(ctx, req, resp), false
	}
	tctx, cancel := context.WithTimeout(ctx, p.cfg.PerTryTimeout)
	defer cancel()
	err = next(tctx, req, resp)
	return err, err != nil && tctx.Err() == context.DeadlineExceeded && ctx.Err() == nil
}

func (p *Policy) jittered(d time.Duration) time.Duration {
	j := p.cfg.Jitter
	return time.Duration(float64(d) * (1 - j + 2*j*rand.Float64()))
}
