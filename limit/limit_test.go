package limit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/balancer/balancertest"
	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/limit"
	"github.com/sluicerpc/sluice/status"
)

// clock is a fake limit.Clock: time stands still until Advance moves it.
// clock is the shared fake clock.
type clock = balancertest.Clock

func newClock() *clock { return balancertest.NewClock(time.Unix(1_700_000_000, 0)) }

func TestTokenBucketRateAndBurst(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rate  float64
		burst int
		step  time.Duration
		span  time.Duration
		want  int // calls admitted when trying at every step over span (inclusive of t=0)
	}{
		{"10qps burst 5 over 10s", 10, 5, time.Millisecond, 10 * time.Second, 5 + 100},
		{"1qps burst 1 over 1m", 1, 1, 10 * time.Millisecond, time.Minute, 1 + 60},
		{"1000qps burst 100 over 2s", 1000, 100, 100 * time.Microsecond, 2 * time.Second, 100 + 2000},
		{"0.5qps burst 3 over 10s", 0.5, 3, 100 * time.Millisecond, 10 * time.Second, 3 + 5},
		{"3qps burst 3 over 3s", 3, 3, time.Millisecond, 3 * time.Second, 3 + 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			b := limit.NewTokenBucket(tc.rate, tc.burst, clk)
			// A full bucket: exactly burst calls pass at once.
			n := 0
			for b.Allow() {
				n++
				if n > tc.burst {
					break
				}
			}
			if n != tc.burst {
				t.Fatalf("burst at t=0: %d calls passed, want %d", n, tc.burst)
			}
			for elapsed := tc.step; elapsed <= tc.span; elapsed += tc.step {
				clk.Advance(tc.step)
				for b.Allow() { // drain: whatever has refilled
					n++
				}
			}
			if n != tc.want {
				t.Fatalf("%d calls passed over %v, want %d", n, tc.span, tc.want)
			}
		})
	}
}

func TestTokenBucketRetryAfter(t *testing.T) {
	clk := newClock()
	b := limit.NewTokenBucket(10, 2, clk) // a token every 100ms
	if d := b.RetryAfter(); d != 0 {
		t.Fatalf("full bucket: RetryAfter = %v, want 0", d)
	}
	b.Allow()
	b.Allow()
	for _, step := range []struct {
		advance time.Duration
		want    time.Duration
	}{
		{0, 100 * time.Millisecond},
		{30 * time.Millisecond, 70 * time.Millisecond},
		{69 * time.Millisecond, time.Millisecond},
		{time.Millisecond, 0},
	} {
		clk.Advance(step.advance)
		if d := b.RetryAfter(); d != step.want {
			t.Fatalf("after +%v: RetryAfter = %v, want %v", step.advance, d, step.want)
		}
		if step.want != 0 {
			if wait, ok := b.Take(); ok || wait != step.want {
				t.Fatalf("after +%v: Take = %v, %v; want %v, false", step.advance, wait, ok, step.want)
			}
		}
	}
	if _, ok := b.Take(); !ok {
		t.Fatal("token due now was not given")
	}
	if d := b.RetryAfter(); d != 100*time.Millisecond {
		t.Fatalf("after taking it: RetryAfter = %v, want 100ms", d)
	}
}

func TestTokenBucketConcurrent(t *testing.T) {
	clk := newClock()
	b := limit.NewTokenBucket(1, 1000, clk)
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for range 500 {
				if b.Allow() {
					n++
				}
			}
			mu.Lock()
			passed += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if passed != 1000 {
		t.Fatalf("%d calls passed a full bucket of 1000 under contention, want exactly 1000", passed)
	}
}

func TestNewTokenBucketPanics(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		burst int
	}{{0, 1}, {-1, 1}, {1, 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewTokenBucket(%v, %d) did not panic", tc.rate, tc.burst)
				}
			}()
			limit.NewTokenBucket(tc.rate, tc.burst, nil)
		}()
	}
}

func TestConcurrency(t *testing.T) {
	c := limit.NewConcurrency(2)
	if !c.Acquire() || !c.Acquire() {
		t.Fatal("first two calls refused")
	}
	if c.Acquire() {
		t.Fatal("third call admitted over a limit of 2")
	}
	c.Release()
	if !c.Acquire() {
		t.Fatal("call refused after a release")
	}
	if c.InFlight() != 2 {
		t.Fatalf("InFlight = %d, want 2", c.InFlight())
	}
}

func TestConcurrencyRace(t *testing.T) {
	const limitN = 4
	c := limit.NewConcurrency(limitN)
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak := 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if !c.Acquire() {
					continue
				}
				n := c.InFlight()
				mu.Lock()
				peak = max(peak, n)
				mu.Unlock()
				c.Release()
			}
		}()
	}
	wg.Wait()
	if peak > limitN {
		t.Fatalf("saw %d calls in flight, limit %d", peak, limitN)
	}
	if c.InFlight() != 0 {
		t.Fatalf("InFlight = %d after all released", c.InFlight())
	}
}

func serverCtx(service, method, caller string) (context.Context, *callinfo.Info) {
	info := &callinfo.Info{Side: callinfo.Server, Service: service, Method: method, Caller: caller}
	return callinfo.NewContext(context.Background(), info), info
}

func ok(context.Context, any, any) error { return nil }

func TestMiddlewareLimits(t *testing.T) {
	clk := newClock()
	l, err := limit.New(limit.Config{
		Methods: map[string]limit.Rate{"pkg.Svc/Get": {QPS: 10, Burst: 2}},
		Callers: map[string]limit.Rate{"batch": {QPS: 1, Burst: 1}},
		Clock:   clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	call := limit.Middleware(l)(ok)
	type try struct {
		method, caller string
		wantErr        string // substring of the message; "" for admitted
		wantRetry      string
	}
	for i, tr := range []try{
		{"Get", "web", "", ""},
		{"Get", "web", "", ""},
		{"Get", "web", "limit: method pkg.Svc/Get over its 10 qps (burst 2)", "100"},
		{"Put", "web", "", ""}, // no limit on Put
		{"Put", "batch", "", ""},
		{"Put", "batch", "limit: caller batch over its 1 qps (burst 1) on pkg.Svc/Put", "1000"},
		{"Put", "", "", ""}, // no caller: not limited per caller
	} {
		ctx, info := serverCtx("pkg.Svc", tr.method, tr.caller)
		err := call(ctx, nil, nil)
		if tr.wantErr == "" {
			if err != nil {
				t.Fatalf("call %d (%s from %q): %v", i, tr.method, tr.caller, err)
			}
			if info.ResponseMetadata.Value(limit.RetryAfterKey) != "" {
				t.Fatalf("call %d: admitted call has retry-after metadata", i)
			}
			continue
		}
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("call %d: code %v (%v), want ResourceExhausted", i, status.Code(err), err)
		}
		if !errors.Is(err, limit.ErrLimited) || !errors.Is(err, status.ErrResourceExhausted) {
			t.Fatalf("call %d: %v does not match ErrLimited and ErrResourceExhausted", i, err)
		}
		if msg := status.Convert(err).Message(); !strings.Contains(msg, tr.wantErr) {
			t.Fatalf("call %d: message %q, want it to contain %q", i, msg, tr.wantErr)
		}
		if got := info.ResponseMetadata.Value(limit.RetryAfterKey); got != tr.wantRetry {
			t.Fatalf("call %d: %s = %q, want %q", i, limit.RetryAfterKey, got, tr.wantRetry)
		}
		if d, ok := limit.RetryAfter(info.ResponseMetadata); !ok || d.Milliseconds() != mustAtoi(tr.wantRetry) {
			t.Fatalf("call %d: RetryAfter = %v, %v", i, d, ok)
		}
	}
	clk.Advance(100 * time.Millisecond)
	ctx, _ := serverCtx("pkg.Svc", "Get", "web")
	if err := call(ctx, nil, nil); err != nil {
		t.Fatalf("Get after refill: %v", err)
	}
}

func mustAtoi(s string) int64 {
	var n int64
	fmt.Sscan(s, &n)
	return n
}

func TestMiddlewareConcurrency(t *testing.T) {
	l, err := limit.New(limit.Config{MaxConcurrency: 1, RetryAfter: config.Duration(250 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	mw := limit.Middleware(l)
	var inner error
	blocking := mw(func(ctx context.Context, req, resp any) error {
		// While this call is in flight, a second one is turned away.
		ctx2, info := serverCtx("pkg.Svc", "Get", "")
		inner = mw(ok)(ctx2, nil, nil)
		if got := info.ResponseMetadata.Value(limit.RetryAfterKey); got != "250" {
			t.Errorf("retry-after = %q, want 250", got)
		}
		return nil
	})
	ctx, _ := serverCtx("pkg.Svc", "Get", "")
	if err := blocking(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	if status.Code(inner) != codes.ResourceExhausted || !strings.Contains(status.Convert(inner).Message(), "1 calls in flight, the most allowed") {
		t.Fatalf("second call: %v", inner)
	}
	if err := mw(ok)(ctx, nil, nil); err != nil {
		t.Fatalf("call after the first ended: %v", err)
	}
}

func TestMiddlewareNoCallInfo(t *testing.T) {
	l, _ := limit.New(limit.Config{Methods: map[string]limit.Rate{"a.S/M": {QPS: 1}}})
	if err := limit.Middleware(l)(ok)(context.Background(), nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  limit.Config
		want string
	}{
		{"zero qps", limit.Config{Methods: map[string]limit.Rate{"pkg.Svc/Get": {}}}, `limit: methods["pkg.Svc/Get"].qps must be > 0`},
		{"negative burst", limit.Config{Methods: map[string]limit.Rate{"pkg.Svc/Get": {QPS: 1, Burst: -1}}}, `limit: methods["pkg.Svc/Get"].burst must be >= 1`},
		{"bad method key", limit.Config{Methods: map[string]limit.Rate{"Get": {QPS: 1}}}, `limit: methods["Get"]: key must be "Service/Method"`},
		{"caller qps", limit.Config{Callers: map[string]limit.Rate{"web": {QPS: -2}}}, `limit: callers["web"].qps must be > 0`},
		{"empty caller", limit.Config{Callers: map[string]limit.Rate{"": {QPS: 2}}}, `limit: callers[""]`},
		{"concurrency", limit.Config{MaxConcurrency: -1}, `limit: maxConcurrency must be >= 0`},
		{"retry after", limit.Config{RetryAfter: -1}, `limit: retryAfter must be >= 0`},
		{"shed threshold", limit.Config{Shed: &limit.ShedConfig{CPUThreshold: 1.5}}, `limit: shed.cpuThreshold must be in (0, 1]`},
		{"shed buckets", limit.Config{Shed: &limit.ShedConfig{Window: config.Duration(time.Millisecond), Buckets: 10}}, `limit: shed.window 1ms cut into 10 buckets`},
		{"shed window", limit.Config{Shed: &limit.ShedConfig{Window: -1}}, `limit: shed.window must be >= 0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := limit.New(tc.cfg)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error starting %q", err, tc.want)
			}
		})
	}
	if _, err := limit.New(limit.Config{}); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
}

func TestDynamicUpdateKeepsState(t *testing.T) {
	clk := newClock()
	cfg := limit.Config{
		Methods: map[string]limit.Rate{"pkg.Svc/Get": {QPS: 1, Burst: 1}, "pkg.Svc/Put": {QPS: 1, Burst: 1}},
		Clock:   clk,
	}
	d, err := limit.NewDynamic(cfg)
	if err != nil {
		t.Fatal(err)
	}
	call := d.Middleware()(ok)
	get, _ := serverCtx("pkg.Svc", "Get", "")
	put, _ := serverCtx("pkg.Svc", "Put", "")
	if call(get, nil, nil) != nil || call(put, nil, nil) != nil {
		t.Fatal("first calls refused")
	}
	// Get unchanged keeps its empty bucket; Put's new rate starts full.
	if err := d.Update(limit.Config{
		Methods: map[string]limit.Rate{"pkg.Svc/Get": {QPS: 1, Burst: 1}, "pkg.Svc/Put": {QPS: 2, Burst: 1}},
		Clock:   clk,
	}); err != nil {
		t.Fatal(err)
	}
	if err := call(get, nil, nil); !errors.Is(err, limit.ErrLimited) {
		t.Fatalf("Get after update: %v, want limited (bucket kept)", err)
	}
	if err := call(put, nil, nil); err != nil {
		t.Fatalf("Put after update: %v, want admitted (new bucket)", err)
	}
	if err := d.Update(limit.Config{Methods: map[string]limit.Rate{"x": {QPS: 1}}}); err == nil {
		t.Fatal("bad update accepted")
	}
	if err := call(get, nil, nil); !errors.Is(err, limit.ErrLimited) {
		t.Fatalf("a refused update changed the policy: %v", err)
	}
}

func TestDynamicUpdateKeepsInFlight(t *testing.T) {
	d, _ := limit.NewDynamic(limit.Config{MaxConcurrency: 1})
	mw := d.Middleware()
	ctx, _ := serverCtx("pkg.Svc", "Get", "")
	var inner error
	err := mw(func(context.Context, any, any) error {
		if err := d.Update(limit.Config{MaxConcurrency: 1}); err != nil {
			return err
		}
		inner = mw(ok)(ctx, nil, nil)
		return nil
	})(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(inner, limit.ErrLimited) {
		t.Fatalf("second call after update: %v, want limited (in-flight count kept)", inner)
	}
	if err := mw(ok)(ctx, nil, nil); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

var _ endpoint.Middleware = limit.Middleware(nil)

func TestTokenBucketAllowAt(t *testing.T) {
	clk := newClock()
	b := limit.NewTokenBucket(1, 1, clk)
	t0 := clk.Now()
	if !b.AllowAt(t0) {
		t.Fatal("a full bucket refused at t0")
	}
	if b.AllowAt(t0) {
		t.Fatal("an empty bucket admitted at t0")
	}
	if b.AllowAt(t0.Add(500 * time.Millisecond)) {
		t.Fatal("admitted half a token early")
	}
	if !b.AllowAt(t0.Add(time.Second)) {
		t.Fatal("refused a second after the last token")
	}
}
