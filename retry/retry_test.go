package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/balancer/balancertest"
	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/retry"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

type harness struct {
	clock  *balancertest.Clock
	sleeps []time.Duration
	calls  int
	peers  []string
}

// policy builds a policy whose sleeps advance the fake clock.
func (h *harness) policy(t *testing.T, cfg retry.Config) *retry.Policy {
	t.Helper()
	if h.clock == nil {
		h.clock = balancertest.NewClock(time.Unix(1000, 0))
	}
	cfg.Clock = h.clock
	cfg.Sleep = func(ctx context.Context, d time.Duration) error {
		h.sleeps = append(h.sleeps, d)
		h.clock.Advance(d)
		return ctx.Err()
	}
	p, err := retry.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// endpointFailing fails the first n attempts with code, recording attempts and avoid lists.
func (h *harness) endpointFailing(n int, code codes.Code) endpoint.Endpoint {
	return func(ctx context.Context, req, resp any) error {
		h.calls++
		info := callinfo.FromContext(ctx)
		if info.Attempt != h.calls {
			return errors.New("attempt number not set")
		}
		info.Peer = "10.0.0." + string(rune('0'+h.calls))
		h.peers = append(h.peers, info.Peer)
		if h.calls <= n {
			return status.Err(code, "boom")
		}
		return nil
	}
}

func ctxWithInfo(parent context.Context) (context.Context, *callinfo.Info) {
	info := &callinfo.Info{Side: callinfo.Client, Service: "s", Method: "m", Attempt: 1}
	return callinfo.NewContext(parent, info), info
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		cfg       retry.Config
		failures  int
		code      codes.Code
		wantCalls int
		wantErr   codes.Code
	}{
		{"success first", retry.Config{}, 0, codes.Unavailable, 1, codes.OK},
		{"one retry", retry.Config{}, 1, codes.Unavailable, 2, codes.OK},
		{"gives up after max attempts", retry.Config{MaxAttempts: 3}, 5, codes.Unavailable, 3, codes.Unavailable},
		{"not retryable", retry.Config{}, 1, codes.InvalidArgument, 1, codes.InvalidArgument},
		{"custom codes", retry.Config{Codes: []codes.Code{codes.Aborted}}, 1, codes.Aborted, 2, codes.OK},
		{"disabled", retry.Config{MaxAttempts: 1}, 1, codes.Unavailable, 1, codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h harness
			p := h.policy(t, tt.cfg)
			ctx, info := ctxWithInfo(context.Background())
			err := p.Middleware()(h.endpointFailing(tt.failures, tt.code))(ctx, nil, nil)
			if status.Code(err) != tt.wantErr || h.calls != tt.wantCalls {
				t.Fatalf("err %v after %d calls; want %v after %d", err, h.calls, tt.wantErr, tt.wantCalls)
			}
			// Each retry avoids the instances that failed before it.
			if want := h.peers[:max(0, len(h.peers)-1)]; tt.wantErr == codes.OK && len(info.Avoid) != len(want) {
				t.Fatalf("avoid %v, want %v", info.Avoid, want)
			}
		})
	}
}

func TestBackoffGrowsWithJitterAndCap(t *testing.T) {
	var h harness
	p := h.policy(t, retry.Config{MaxAttempts: 6, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, Jitter: 0.1})
	ctx, _ := ctxWithInfo(context.Background())
	p.Middleware()(h.endpointFailing(10, codes.Unavailable))(ctx, nil, nil)
	base := []time.Duration{100, 200, 300, 300, 300}
	if len(h.sleeps) != len(base) {
		t.Fatalf("slept %v", h.sleeps)
	}
	for i, b := range base {
		b *= time.Millisecond
		if d := h.sleeps[i]; d < b*9/10 || d > b*11/10 {
			t.Errorf("sleep %d = %v, want %v ± 10%%", i, d, b)
		}
	}
}

func TestNoRetryPastCallerDeadline(t *testing.T) {
	var h harness
	p := h.policy(t, retry.Config{MaxAttempts: 5, InitialBackoff: time.Second, MaxBackoff: time.Second, Jitter: 0.01})
	// The caller's deadline is measured on the real clock by the context,
	// and on the fake one by the policy: give it 1.5 s of fake time.
	h.clock = balancertest.NewClock(time.Now())
	p = h.policy(t, retry.Config{MaxAttempts: 5, InitialBackoff: time.Second, MaxBackoff: time.Second, Jitter: 0.01})
	dctx, cancel := context.WithDeadline(context.Background(), h.clock.Now().Add(1500*time.Millisecond))
	defer cancel()
	ctx, _ := ctxWithInfo(dctx)
	err := p.Middleware()(h.endpointFailing(10, codes.Unavailable))(ctx, nil, nil)
	if status.Code(err) != codes.Unavailable || h.calls != 2 {
		t.Fatalf("err %v after %d calls; want the second failure (a third try would end past the deadline)", err, h.calls)
	}
}

func TestCallerCancellationIsNotRetried(t *testing.T) {
	var h harness
	p := h.policy(t, retry.Config{})
	cctx, cancel := context.WithCancel(context.Background())
	ctx, _ := ctxWithInfo(cctx)
	next := func(ctx context.Context, req, resp any) error {
		h.calls++
		cancel()
		return status.Err(codes.Unavailable, "gone")
	}
	p.Middleware()(next)(ctx, nil, nil)
	if h.calls != 1 {
		t.Fatalf("%d calls after the caller cancelled", h.calls)
	}
}

func TestPerTryTimeoutIsRetried(t *testing.T) {
	var h harness
	p := h.policy(t, retry.Config{PerTryTimeout: 10 * time.Millisecond})
	ctx, _ := ctxWithInfo(context.Background())
	next := func(ctx context.Context, req, resp any) error {
		h.calls++
		if h.calls == 1 {
			<-ctx.Done() // the per-try timeout fires
			return status.Err(codes.DeadlineExceeded, "slow")
		}
		return nil
	}
	if err := p.Middleware()(next)(ctx, nil, nil); err != nil || h.calls != 2 {
		t.Fatalf("err %v after %d calls", err, h.calls)
	}
}

func TestBudgetHoldsUnderTotalFailure(t *testing.T) {
	// 100% failure, 3 attempts allowed per call: without a budget 3×; with
	// the default budget the dependency sees at most 1.1× the calls plus
	// the 10/s floor.
	clock := balancertest.NewClock(time.Unix(1000, 0))
	budget := retry.NewBudget(retry.BudgetConfig{Clock: clock})
	p, err := retry.New(retry.Config{MaxAttempts: 3, Budget: budget, Clock: clock,
		Sleep: func(context.Context, time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	var h harness
	const calls = 100000
	for i := 0; i < calls; i++ {
		ctx, _ := ctxWithInfo(context.Background())
		p.Middleware()(func(ctx context.Context, req, resp any) error {
			h.calls++
			return status.Err(codes.Unavailable, "down")
		})(ctx, nil, nil)
		clock.Advance(100 * time.Microsecond) // 10,000 calls per second for 10 s
	}
	floor := 10.0 * 10 // MinPerSecond × the 10 s the run lasts
	got := float64(h.calls)
	t.Logf("%d calls made, %v attempts received: %.3fx", calls, got, got/calls)
	if limit := 1.1*calls + floor; got > limit {
		t.Fatalf("dependency received %v attempts for %d calls, want at most %v", got, calls, limit)
	}
	if h.calls <= calls {
		t.Fatal("the budget allowed no retry at all")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []retry.Config{
		{MaxAttempts: -1}, {Multiplier: 0.5}, {Jitter: 2}, {InitialBackoff: time.Second, MaxBackoff: time.Millisecond},
		{Codes: []codes.Code{codes.OK}}, {PerTryTimeout: -1},
	} {
		if _, err := retry.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}
