package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/balancer/balancertest"
	"github.com/sluicerpc/sluice/breaker"
	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/status"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newClassic(t *testing.T, cfg breaker.Config) (*breaker.Breaker, *balancertest.Clock) {
	t.Helper()
	clk := balancertest.NewClock(t0)
	cfg.Clock = clk
	b, err := breaker.New("svc/M", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b, clk
}

// call runs one call through b with the given error and latency and
// reports whether it was allowed.
func call(b *breaker.Breaker, err error, lat time.Duration) bool {
	tok, aerr := b.Allow()
	if aerr != nil {
		return false
	}
	b.Record(tok, err, lat)
	return true
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		cfg   breaker.Config
		field string
	}{
		{breaker.Config{Window: -1}, "Window"},
		{breaker.Config{Buckets: -1}, "Buckets"},
		{breaker.Config{Window: time.Millisecond, Buckets: 10}, "Window/Buckets"},
		{breaker.Config{ErrorRate: 1.5}, "ErrorRate"},
		{breaker.Config{MinRequests: -3}, "MinRequests"},
		{breaker.Config{LatencyFactor: 0.5}, "LatencyFactor"},
		{breaker.Config{BaselineWeight: 2}, "BaselineWeight"},
		{breaker.Config{BaseSleep: -time.Second}, "BaseSleep"},
		{breaker.Config{BaseSleep: time.Minute, MaxSleep: time.Second}, "MaxSleep"},
		{breaker.Config{Probes: -1}, "Probes"},
		{breaker.Config{Mode: 7}, "Mode"},
		{breaker.Config{SREK: 0.5}, "SREK"},
	} {
		_, err := breaker.New("x", tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.field+" =") || !strings.HasPrefix(err.Error(), "breaker: ") {
			t.Errorf("%+v: err = %v, want one naming %s", tc.cfg, err, tc.field)
		}
	}
	if _, err := breaker.New("x", breaker.Config{}); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	if _, err := breaker.NewSet(breaker.Config{Probes: -1}); err == nil {
		t.Error("NewSet accepted a bad Config")
	}
}

func TestErrorRateTrip(t *testing.T) {
	unavailable := status.Err(codes.Unavailable, "down")
	for _, tc := range []struct {
		name  string
		ok    int
		err   error
		nerr  int
		want  breaker.State
		check string
	}{
		{"below MinRequests", 0, unavailable, 19, breaker.Closed, ""},
		{"at MinRequests all failing", 0, unavailable, 20, breaker.Open, ""},
		{"rate reached", 10, unavailable, 10, breaker.Open, ""},
		{"rate below", 11, unavailable, 9, breaker.Closed, ""},
		{"DeadlineExceeded counts", 0, status.Err(codes.DeadlineExceeded, "slow"), 20, breaker.Open, ""},
		{"Internal counts", 0, status.Err(codes.Internal, "bug"), 20, breaker.Open, ""},
		{"ResourceExhausted counts", 0, status.Err(codes.ResourceExhausted, "full"), 20, breaker.Open, ""},
		{"error without status is Unknown", 0, errors.New("boom"), 20, breaker.Open, ""},
		{"InvalidArgument does not count", 0, status.Err(codes.InvalidArgument, "bad"), 50, breaker.Closed, ""},
		{"NotFound does not count", 0, status.Err(codes.NotFound, "gone"), 50, breaker.Closed, ""},
		{"PermissionDenied does not count", 0, status.Err(codes.PermissionDenied, "no"), 50, breaker.Closed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, clk := newClassic(t, breaker.Config{})
			for range tc.ok {
				call(b, nil, time.Millisecond)
			}
			for range tc.nerr {
				clk.Advance(10 * time.Millisecond)
				call(b, tc.err, time.Millisecond)
			}
			if got := b.State(); got != tc.want {
				t.Errorf("state = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWindowSlides(t *testing.T) {
	b, clk := newClassic(t, breaker.Config{})
	fail := status.Err(codes.Unavailable, "down")
	for range 15 {
		call(b, fail, time.Millisecond)
	}
	clk.Advance(11 * time.Second) // those failures leave the window
	for range 10 {
		call(b, fail, time.Millisecond)
	}
	if b.State() != breaker.Closed {
		t.Fatalf("failures outside the window tripped the breaker")
	}
	for range 10 {
		call(b, fail, time.Millisecond)
	}
	if b.State() != breaker.Open {
		t.Fatalf("state = %v, want open", b.State())
	}
}

func TestLatencyTrip(t *testing.T) {
	b, clk := newClassic(t, breaker.Config{})
	// Ten healthy seconds at 10ms teach the baseline.
	for range 10 {
		for range 30 {
			call(b, nil, 10*time.Millisecond)
		}
		clk.Advance(time.Second)
	}
	call(b, nil, 10*time.Millisecond)
	base := b.Baseline()
	if base < 8*time.Millisecond || base > 12*time.Millisecond {
		t.Fatalf("baseline = %v, want about 10ms", base)
	}
	// Twice the baseline is within the factor of 3.
	for range 100 {
		call(b, nil, 20*time.Millisecond)
	}
	clk.Advance(time.Second)
	call(b, nil, 10*time.Millisecond)
	if b.State() != breaker.Closed {
		t.Fatalf("2x baseline tripped the breaker")
	}
	// Five times the baseline trips at the next bucket.
	for range 200 {
		call(b, nil, 50*time.Millisecond)
	}
	if b.State() != breaker.Closed {
		t.Fatalf("latency tripped before the bucket ended")
	}
	clk.Advance(time.Second)
	call(b, nil, 10*time.Millisecond)
	if b.State() != breaker.Open {
		t.Fatalf("state = %v, want open on latency", b.State())
	}
}

func TestLatencyNeedsBaselineAndFloor(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  breaker.Config
		fast time.Duration
		slow time.Duration
		want breaker.State
	}{
		{"off", breaker.Config{LatencyFactor: -1}, 10 * time.Millisecond, time.Second, breaker.Closed},
		{"under floor", breaker.Config{}, 10 * time.Microsecond, 500 * time.Microsecond, breaker.Closed},
		{"over floor", breaker.Config{}, 10 * time.Microsecond, 5 * time.Millisecond, breaker.Open},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, clk := newClassic(t, tc.cfg)
			for range 3 {
				for range 30 {
					call(b, nil, tc.fast)
				}
				clk.Advance(time.Second)
			}
			for range 300 {
				call(b, nil, tc.slow)
			}
			clk.Advance(time.Second)
			call(b, nil, tc.fast)
			if got := b.State(); got != tc.want {
				t.Errorf("state = %v, want %v", got, tc.want)
			}
		})
	}
}

type transition struct{ from, to breaker.State }

func TestHalfOpenCycle(t *testing.T) {
	var seen []transition
	b, clk := newClassic(t, breaker.Config{
		OnStateChange: func(name string, from, to breaker.State) {
			if name != "svc/M" {
				t.Errorf("callback name = %q", name)
			}
			seen = append(seen, transition{from, to})
		},
	})
	fail := status.Err(codes.Unavailable, "down")
	trip := func() {
		t.Helper()
		for range 20 {
			call(b, fail, time.Millisecond)
		}
		if b.State() != breaker.Open {
			t.Fatalf("did not trip")
		}
	}
	// waitOpen checks the breaker stays open for exactly sleep.
	waitOpen := func(sleep time.Duration) {
		t.Helper()
		clk.Advance(sleep - time.Millisecond)
		if _, err := b.Allow(); !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("allowed %v before the %v sleep ended", sleep-time.Millisecond, sleep)
		}
		clk.Advance(time.Millisecond)
	}

	trip()
	// Consecutive failed probes double the sleep up to the cap.
	for _, sleep := range []time.Duration{5, 10, 20, 40, 80, 120, 120} {
		waitOpen(sleep * time.Second)
		if !call(b, fail, time.Millisecond) {
			t.Fatalf("probe after %vs rejected", sleep)
		}
		if b.State() != breaker.Open {
			t.Fatalf("failed probe: state = %v, want open", b.State())
		}
	}
	waitOpen(120 * time.Second)
	// N successful probes close.
	for i := range 3 {
		if !call(b, nil, time.Millisecond) {
			t.Fatalf("probe %d rejected", i)
		}
		want := breaker.HalfOpen
		if i == 2 {
			want = breaker.Closed
		}
		if b.State() != want {
			t.Fatalf("after %d good probes: state = %v, want %v", i+1, b.State(), want)
		}
	}
	// The window restarted: one failure does not re-trip.
	call(b, fail, time.Millisecond)
	if b.State() != breaker.Closed {
		t.Fatalf("old failures survived the close")
	}
	// A close resets the doubling.
	trip()
	waitOpen(5 * time.Second)
	if !call(b, nil, time.Millisecond) {
		t.Fatal("probe rejected after reset sleep")
	}

	want := []transition{{breaker.Closed, breaker.Open}}
	for range 7 {
		want = append(want, transition{breaker.Open, breaker.HalfOpen}, transition{breaker.HalfOpen, breaker.Open})
	}
	want = append(want,
		transition{breaker.Open, breaker.HalfOpen}, transition{breaker.HalfOpen, breaker.Closed},
		transition{breaker.Closed, breaker.Open}, transition{breaker.Open, breaker.HalfOpen})
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("transitions:\n got %v\nwant %v", seen, want)
	}
}

func TestHalfOpenProbesConcurrent(t *testing.T) {
	for _, probes := range []int{1, 3, 10} {
		t.Run(fmt.Sprint(probes), func(t *testing.T) {
			b, clk := newClassic(t, breaker.Config{Probes: probes})
			for range 20 {
				call(b, status.Err(codes.Unavailable, "down"), 0)
			}
			clk.Advance(5 * time.Second)
			var (
				wg      sync.WaitGroup
				allowed atomic.Int64
				mu      sync.Mutex
				toks    []breaker.Token
			)
			for range 64 {
				wg.Go(func() {
					tok, err := b.Allow()
					if err == nil {
						allowed.Add(1)
						mu.Lock()
						toks = append(toks, tok)
						mu.Unlock()
					} else if !errors.Is(err, breaker.ErrOpen) || !strings.Contains(err.Error(), "is half-open") {
						t.Errorf("rejection = %v", err)
					}
				})
			}
			wg.Wait()
			if allowed.Load() != int64(probes) {
				t.Fatalf("allowed %d probes, want %d", allowed.Load(), probes)
			}
			for i, tok := range toks {
				if b.State() != breaker.HalfOpen {
					t.Fatalf("closed after %d of %d probes", i, probes)
				}
				b.Record(tok, nil, time.Millisecond)
			}
			if b.State() != breaker.Closed {
				t.Fatalf("state = %v after all probes succeeded", b.State())
			}
		})
	}
}

func TestStaleProbeIgnored(t *testing.T) {
	b, clk := newClassic(t, breaker.Config{Probes: 2})
	fail := status.Err(codes.Unavailable, "down")
	for range 20 {
		call(b, fail, 0)
	}
	clk.Advance(5 * time.Second)
	stale, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	call(b, fail, 0) // second probe fails: reopen
	clk.Advance(10 * time.Second)
	tok, _ := b.Allow() // new half-open period
	b.Record(stale, nil, 0)
	b.Record(tok, nil, 0)
	if b.State() != breaker.HalfOpen {
		t.Fatalf("a probe of an old period counted: state = %v", b.State())
	}
}

func TestLostProbesReopen(t *testing.T) {
	b, clk := newClassic(t, breaker.Config{Probes: 1})
	for range 20 {
		call(b, status.Err(codes.Unavailable, "down"), 0)
	}
	clk.Advance(5 * time.Second)
	if _, err := b.Allow(); err != nil { // a probe whose Record never comes
		t.Fatal(err)
	}
	clk.Advance(120*time.Second - time.Millisecond)
	if _, err := b.Allow(); err == nil || b.State() != breaker.HalfOpen {
		t.Fatalf("state = %v, err = %v; want half-open rejecting", b.State(), err)
	}
	clk.Advance(time.Millisecond)
	if _, err := b.Allow(); !errors.Is(err, breaker.ErrOpen) || b.State() != breaker.Open {
		t.Fatalf("lost probe: state = %v, err = %v; want reopened", b.State(), err)
	}
	clk.Advance(10 * time.Second) // the sleep doubled
	if !call(b, nil, 0) || b.State() != breaker.Closed {
		t.Fatalf("state = %v after a good probe", b.State())
	}
}

func TestRejection(t *testing.T) {
	b, _ := newClassic(t, breaker.Config{})
	for range 20 {
		call(b, status.Err(codes.Unavailable, "down"), 0)
	}
	_, err := b.Allow()
	if !errors.Is(err, breaker.ErrOpen) {
		t.Errorf("errors.Is(%v, ErrOpen) = false", err)
	}
	if !errors.Is(err, status.ErrUnavailable) || status.Code(err) != codes.Unavailable {
		t.Errorf("code = %v, want Unavailable", status.Code(err))
	}
	if got, want := status.Convert(err).Message(), "breaker: svc/M is open"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}

func newSRE(t *testing.T, r func() float64) (*breaker.Breaker, *balancertest.Clock) {
	t.Helper()
	clk := balancertest.NewClock(t0)
	b, err := breaker.New("sre", breaker.Config{Mode: breaker.SRE, Clock: clk, Rand: r})
	if err != nil {
		t.Fatal(err)
	}
	return b, clk
}

func TestSREThreshold(t *testing.T) {
	// 100 requests, 20 accepted: p = (100 − 1.5×20) / 101 ≈ 0.693.
	for _, tc := range []struct {
		draw   float64
		reject bool
	}{{0, true}, {0.69, true}, {0.70, false}, {0.99, false}} {
		var draw float64
		b, _ := newSRE(t, func() float64 { return draw })
		for i := range 100 {
			var err error
			if i >= 20 {
				err = status.Err(codes.Unavailable, "down")
			}
			b.Record(breaker.Token{}, err, time.Millisecond)
		}
		draw = tc.draw
		_, err := b.Allow()
		if got := err != nil; got != tc.reject {
			t.Errorf("draw %v: rejected = %v, want %v", tc.draw, got, tc.reject)
		}
		if err != nil && (!errors.Is(err, breaker.ErrOpen) || status.Code(err) != codes.Unavailable) {
			t.Errorf("rejection = %v", err)
		}
		if b.State() != breaker.Closed {
			t.Errorf("SRE state = %v", b.State())
		}
	}
}

func TestSRERejectionRate(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	b, clk := newSRE(t, r.Float64)
	fail := status.Err(codes.Unavailable, "down")
	for i := range 10000 {
		var err error
		if i%5 == 0 {
			err = nil
		} else {
			err = fail
		}
		b.Record(breaker.Token{}, err, time.Millisecond) // 2000 accepts
	}
	rejected := 0
	const n = 2000
	for range n {
		if _, err := b.Allow(); err != nil {
			rejected++
		}
	}
	// p starts at 7000/10001 and ends near 8400/12001; both about 0.70.
	if got := float64(rejected) / n; got < 0.67 || got > 0.73 {
		t.Errorf("rejection rate = %.3f, want 0.70 ± 0.03", got)
	}
	// Once the window has moved on, nothing is rejected.
	clk.Advance(11 * time.Second)
	if _, err := b.Allow(); err != nil {
		t.Errorf("rejected with an empty window: %v", err)
	}
}

func TestSRENeverRejectsHealthy(t *testing.T) {
	b, _ := newSRE(t, func() float64 { return 0 }) // the most eager draw
	for i := range 5000 {
		var err error
		if i%2 == 0 {
			err = status.Err(codes.InvalidArgument, "caller's fault")
		}
		if !call(b, err, time.Millisecond) {
			t.Fatalf("call %d rejected while healthy", i)
		}
	}
}

func TestMiddleware(t *testing.T) {
	clk := balancertest.NewClock(t0)
	set, err := breaker.NewSet(breaker.Config{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	var (
		calls   int
		nextErr error
	)
	next := func(ctx context.Context, req, resp any) error {
		calls++
		clk.Advance(time.Millisecond)
		return nextErr
	}
	ep := breaker.Middleware(set)(next)
	ctxFor := func(method string) context.Context {
		return callinfo.NewContext(context.Background(), &callinfo.Info{Side: callinfo.Client, Service: "pkg.Order", Method: method})
	}
	nextErr = status.Err(codes.Unavailable, "down")
	for range 20 {
		if err := ep(ctxFor("Get"), nil, nil); status.Code(err) != codes.Unavailable || errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("pass-through error = %v", err)
		}
	}
	err = ep(ctxFor("Get"), nil, nil)
	if !errors.Is(err, breaker.ErrOpen) || status.Convert(err).Message() != "breaker: pkg.Order/Get is open" {
		t.Fatalf("rejection = %v", err)
	}
	if calls != 20 {
		t.Fatalf("next called %d times, want 20", calls)
	}
	// Other methods have their own breaker.
	nextErr = nil
	if err := ep(ctxFor("List"), nil, nil); err != nil {
		t.Fatalf("List: %v", err)
	}
	if got := set.Method("pkg.Order", "Get").State(); got != breaker.Open {
		t.Fatalf("Get state = %v", got)
	}
	// Without callinfo the call passes.
	if err := ep(context.Background(), nil, nil); err != nil {
		t.Fatal(err)
	}
	// After the sleep, three probes close it.
	clk.Advance(5 * time.Second)
	for range 3 {
		if err := ep(ctxFor("Get"), nil, nil); err != nil {
			t.Fatalf("probe: %v", err)
		}
	}
	if got := set.Method("pkg.Order", "Get").State(); got != breaker.Closed {
		t.Fatalf("Get state = %v, want closed", got)
	}
}

func TestInstanceMiddleware(t *testing.T) {
	clk := balancertest.NewClock(t0)
	set, _ := breaker.NewSet(breaker.Config{Clock: clk, MinRequests: 1})
	ep := breaker.InstanceMiddleware(set)(func(ctx context.Context, req, resp any) error {
		if callinfo.FromContext(ctx).Peer == "10.0.0.1:80" {
			return status.Err(codes.Unavailable, "down")
		}
		return nil
	})
	ctx := func(peer string) context.Context {
		return callinfo.NewContext(context.Background(), &callinfo.Info{Service: "s", Method: "m", Peer: peer})
	}
	ep(ctx("10.0.0.1:80"), nil, nil)
	if err := ep(ctx("10.0.0.1:80"), nil, nil); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("bad instance: %v", err)
	}
	if err := ep(ctx("10.0.0.2:80"), nil, nil); err != nil {
		t.Fatalf("good instance: %v", err)
	}
	if set.Get("10.0.0.1:80").State() != breaker.Open {
		t.Fatal("instance breaker not open")
	}
	set.Delete("10.0.0.1:80")
	if set.Get("10.0.0.1:80").State() != breaker.Closed {
		t.Fatal("Delete kept the breaker")
	}
}

func TestConcurrent(t *testing.T) {
	for _, mode := range []breaker.Mode{breaker.Classic, breaker.SRE} {
		t.Run(mode.String(), func(t *testing.T) {
			clk := balancertest.NewClock(t0)
			var changes atomic.Int64
			b, err := breaker.New("c", breaker.Config{
				Mode: mode, Clock: clk, MinRequests: 5, BaseSleep: 100 * time.Millisecond, MaxSleep: time.Second,
				OnStateChange: func(string, breaker.State, breaker.State) { changes.Add(1) },
			})
			if err != nil {
				t.Fatal(err)
			}
			fail := status.Err(codes.Unavailable, "down")
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 3000 {
						tok, err := b.Allow()
						if err != nil {
							if !errors.Is(err, breaker.ErrOpen) {
								t.Errorf("rejection = %v", err)
							}
							continue
						}
						var rerr error
						if (i/500+g)%2 == 0 && i%3 != 0 {
							rerr = fail
						}
						b.Record(tok, rerr, time.Duration(i%50)*time.Millisecond)
					}
				})
			}
			wg.Go(func() {
				for range 2000 {
					clk.Advance(7 * time.Millisecond)
				}
			})
			wg.Wait()
			if s := b.State(); s != breaker.Closed && s != breaker.Open && s != breaker.HalfOpen {
				t.Fatalf("state = %v", s)
			}
			t.Logf("%d state changes", changes.Load())
		})
	}
}

func TestZeroAllocs(t *testing.T) {
	b, _ := newClassic(t, breaker.Config{})
	if n := testing.AllocsPerRun(1000, func() {
		tok, _ := b.Allow()
		b.Record(tok, nil, time.Millisecond)
	}); n != 0 {
		t.Errorf("Allow+Record: %v allocs", n)
	}
	set, _ := breaker.NewSet(breaker.Config{Clock: balancertest.NewClock(t0)})
	ep := breaker.Middleware(set)(func(context.Context, any, any) error { return nil })
	ctx := callinfo.NewContext(context.Background(), &callinfo.Info{Service: "pkg.Order", Method: "Get"})
	ep(ctx, nil, nil)
	if n := testing.AllocsPerRun(1000, func() { ep(ctx, nil, nil) }); n != 0 {
		t.Errorf("Middleware: %v allocs", n)
	}
}
