package retry_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/balancer/balancertest"
	"github.com/sluicerpc/sluice/balancer/roundrobin"
	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/examples/echo/echotest"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/retry"
	"github.com/sluicerpc/sluice/status"
)

// fakeTimers is a HedgeConfig.AfterFunc whose timers fire only when the
// test fires them.
type fakeTimers struct {
	armed chan *fakeTimer
	mu    sync.Mutex
	all   []*fakeTimer
}

func newFakeTimers() *fakeTimers { return &fakeTimers{armed: make(chan *fakeTimer, 64)} }

func (ft *fakeTimers) AfterFunc(d time.Duration, f func()) retry.Timer {
	tm := &fakeTimer{ft: ft, d: d, f: f}
	ft.mu.Lock()
	ft.all = append(ft.all, tm)
	ft.mu.Unlock()
	ft.armed <- tm
	return tm
}

// next returns the next timer armed, waiting for it.
func (ft *fakeTimers) next(t *testing.T) *fakeTimer {
	t.Helper()
	select {
	case tm := <-ft.armed:
		return tm
	case <-time.After(5 * time.Second):
		t.Fatal("no timer armed")
		return nil
	}
}

func (ft *fakeTimers) timers() []*fakeTimer {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return slices.Clone(ft.all)
}

type fakeTimer struct {
	ft    *fakeTimers
	d     time.Duration
	f     func()
	mu    sync.Mutex
	state int // 0 pending, 1 fired, 2 stopped
}

func (tm *fakeTimer) Stop() bool {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if tm.state != 0 {
		return false
	}
	tm.state = 2
	return true
}

func (tm *fakeTimer) Reset(d time.Duration) bool {
	tm.mu.Lock()
	pending := tm.state == 0
	tm.state, tm.d = 0, d
	tm.mu.Unlock()
	tm.ft.armed <- tm
	return pending
}

// fire runs the function on its own goroutine, as time.AfterFunc does,
// unless the timer was stopped.
func (tm *fakeTimer) fire() bool {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if tm.state != 0 {
		return false
	}
	tm.state = 1
	go tm.f()
	return true
}

func (tm *fakeTimer) fired() bool {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.state == 1
}

// step is what one attempt (by its Attempt number) does.
type step struct {
	peer string
	// hold delays the reply until it is closed or the attempt's context
	// ends; nil replies at once, never (a nil-free open channel) holds
	// until the context ends.
	hold chan struct{}
	err  error
	// scribble: once its context ends, the attempt writes into its own
	// resp and info as a late reply would.
	scribble bool
}

// seen is what the endpoint saw of one attempt.
type seen struct {
	attempt  int
	avoid    []string
	canceled bool // it ended because its context did
}

// script is an endpoint that plays steps and records what it saw.
type script struct {
	steps   map[int]step
	started chan int
	mu      sync.Mutex
	seen    map[int]*seen
}

func newScript(steps map[int]step) *script {
	return &script{steps: steps, started: make(chan int, 16), seen: map[int]*seen{}}
}

func (s *script) endpoint(ctx context.Context, req, resp any) error {
	info := callinfo.FromContext(ctx)
	st := s.steps[info.Attempt]
	sn := &seen{attempt: info.Attempt, avoid: slices.Clone(info.Avoid)}
	s.mu.Lock()
	s.seen[info.Attempt] = sn
	s.mu.Unlock()
	s.started <- info.Attempt
	info.Peer = st.peer
	r := resp.(*echopb.EchoResponse)
	if st.hold != nil {
		select {
		case <-st.hold:
		case <-ctx.Done():
			if st.scribble {
				r.ServedBy, r.Message = "loser", "loser"
				info.Peer = "loser"
				info.ResponseMetadata = metadata.Pairs("served-by", "loser")
			}
			s.mu.Lock()
			sn.canceled = true
			s.mu.Unlock()
			return status.Wrap(codes.Canceled, "test: attempt canceled", ctx.Err())
		}
	}
	if st.err != nil {
		return st.err
	}
	r.Message = req.(*echopb.EchoRequest).Message
	r.ServedBy = st.peer
	info.ResponseMetadata = metadata.Pairs("served-by", st.peer)
	return nil
}

// waitStarted waits until attempt n has started.
func (s *script) waitStarted(t *testing.T, n int) {
	t.Helper()
	for {
		s.mu.Lock()
		_, ok := s.seen[n]
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.started:
		case <-time.After(5 * time.Second):
			t.Fatalf("attempt %d never started", n)
		}
	}
}

func (s *script) attempts() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ns []int
	for n := range s.seen {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	return ns
}

// newCall returns a client call context like the one client.Invoke makes.
func newCall(parent context.Context, avoid ...string) *callinfo.Carrier {
	return &callinfo.Carrier{Context: parent, Info: callinfo.Info{
		Side: callinfo.Client, Service: "echo.EchoService", Method: "Echo",
		FullMethod: "/echo.EchoService/Echo", Attempt: 1, Avoid: avoid,
	}}
}

var never = make(chan struct{})

func TestHedging(t *testing.T) {
	unavailable := status.Err(codes.Unavailable, "test: down")
	invalid := status.Err(codes.InvalidArgument, "test: bad request")
	type env struct {
		t      *testing.T
		timers *fakeTimers
		s      *script
	}
	fire := func(afterAttempt int) func(env) {
		return func(e env) {
			e.s.waitStarted(e.t, afterAttempt)
			if !e.timers.next(e.t).fire() {
				e.t.Fatal("timer already stopped")
			}
		}
	}
	release := func(ch chan struct{}, afterAttempt int) func(env) {
		return func(e env) {
			e.s.waitStarted(e.t, afterAttempt)
			close(ch)
		}
	}
	hold1 := make(chan struct{})
	for _, tc := range []struct {
		name    string
		cfg     retry.HedgeConfig
		avoid   []string // the caller's
		steps   map[int]step
		actions []func(env)

		wantCode     codes.Code
		wantPeer     string // the caller's Info.Peer after the call
		wantAttempt  int
		wantAttempts []int
		wantAvoid    map[int][]string
		wantCanceled []int
		wantFired    int
	}{{
		name:         "first wins",
		steps:        map[int]step{1: {peer: "a"}},
		wantPeer:     "a",
		wantAttempt:  1,
		wantAttempts: []int{1},
	}, {
		name:         "second wins when first is slow",
		avoid:        []string{"z"},
		steps:        map[int]step{1: {peer: "a", hold: never}, 2: {peer: "b"}},
		actions:      []func(env){fire(1)},
		wantPeer:     "b",
		wantAttempt:  2,
		wantAttempts: []int{1, 2},
		wantAvoid:    map[int][]string{1: {"z"}, 2: {"z"}},
		wantCanceled: []int{1},
		wantFired:    1,
	}, {
		name:         "non-fatal error sends the next at once",
		steps:        map[int]step{1: {peer: "a", err: unavailable}, 2: {peer: "b"}},
		wantPeer:     "b",
		wantAttempt:  2,
		wantAttempts: []int{1, 2},
		wantAvoid:    map[int][]string{2: {"a"}},
	}, {
		name:         "fatal error of the first attempt returns",
		steps:        map[int]step{1: {peer: "a", err: invalid}},
		wantCode:     codes.InvalidArgument,
		wantPeer:     "a",
		wantAttempt:  1,
		wantAttempts: []int{1},
	}, {
		name:         "fatal error of a hedge returns and cancels the first",
		steps:        map[int]step{1: {peer: "a", hold: never}, 2: {peer: "b", err: invalid}},
		actions:      []func(env){fire(1)},
		wantCode:     codes.InvalidArgument,
		wantPeer:     "b",
		wantAttempt:  2,
		wantAttempts: []int{1, 2},
		wantCanceled: []int{1},
		wantFired:    1,
	}, {
		name:         "all fail: the last error",
		steps:        map[int]step{1: {peer: "a", err: unavailable}, 2: {peer: "b", err: unavailable}},
		wantCode:     codes.Unavailable,
		wantPeer:     "b",
		wantAttempt:  2,
		wantAttempts: []int{1, 2},
	}, {
		name: "third wins, both earlier attempts canceled",
		cfg:  retry.HedgeConfig{MaxAttempts: 3},
		steps: map[int]step{
			1: {peer: "a", hold: never}, 2: {peer: "b", hold: never}, 3: {peer: "c"},
		},
		actions:      []func(env){fire(1), fire(2)},
		wantPeer:     "c",
		wantAttempt:  3,
		wantAttempts: []int{1, 2, 3},
		wantCanceled: []int{1, 2},
		wantFired:    2,
	}, {
		name: "non-fatal error of a hedge sends the next at once",
		cfg:  retry.HedgeConfig{MaxAttempts: 3},
		steps: map[int]step{
			1: {peer: "a", hold: never}, 2: {peer: "b", err: unavailable}, 3: {peer: "c"},
		},
		actions:      []func(env){fire(1)},
		wantPeer:     "c",
		wantAttempt:  3,
		wantAttempts: []int{1, 2, 3},
		wantAvoid:    map[int][]string{3: {"b"}},
		wantCanceled: []int{1},
		wantFired:    1,
	}, {
		name: "a losing hedge writes only its own resp and info",
		steps: map[int]step{
			1: {peer: "a", hold: hold1}, 2: {peer: "b", hold: never, scribble: true},
		},
		actions:      []func(env){fire(1), release(hold1, 2)},
		wantPeer:     "a",
		wantAttempt:  1,
		wantAttempts: []int{1, 2},
		wantCanceled: []int{2},
		wantFired:    1,
	}, {
		name: "a losing first attempt's late writes are replaced by the winner's",
		steps: map[int]step{
			1: {peer: "a", hold: never, scribble: true}, 2: {peer: "b"},
		},
		actions:      []func(env){fire(1)},
		wantPeer:     "b",
		wantAttempt:  2,
		wantAttempts: []int{1, 2},
		wantCanceled: []int{1},
		wantFired:    1,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			timers := newFakeTimers()
			cfg := tc.cfg
			cfg.Delay = 20 * time.Millisecond
			cfg.AfterFunc = timers.AfterFunc
			h, err := retry.NewHedger(cfg)
			if err != nil {
				t.Fatal(err)
			}
			s := newScript(tc.steps)
			ep := h.Middleware()(s.endpoint)
			call := newCall(context.Background(), tc.avoid...)
			resp := &echopb.EchoResponse{}
			done := make(chan error, 1)
			go func() { done <- ep(call, &echopb.EchoRequest{Message: "hi"}, resp) }()
			for _, act := range tc.actions {
				act(env{t, timers, s})
			}
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("call did not return")
			}

			if got := status.Code(err); got != tc.wantCode {
				t.Fatalf("code %v (%v), want %v", got, err, tc.wantCode)
			}
			info := &call.Info
			if info.Peer != tc.wantPeer || info.Attempt != tc.wantAttempt {
				t.Errorf("caller's info: peer %q attempt %d, want %q %d", info.Peer, info.Attempt, tc.wantPeer, tc.wantAttempt)
			}
			if tc.wantCode == codes.OK {
				if resp.ServedBy != tc.wantPeer || resp.Message != "hi" {
					t.Errorf("resp %v, want served by %s", resp, tc.wantPeer)
				}
				if got := info.ResponseMetadata.Value("served-by"); got != tc.wantPeer {
					t.Errorf("response metadata served-by %q, want %q", got, tc.wantPeer)
				}
			}
			if !slices.Equal(info.Avoid, tc.avoid) {
				t.Errorf("caller's avoid %v changed from %v", info.Avoid, tc.avoid)
			}
			if got := s.attempts(); !slices.Equal(got, tc.wantAttempts) {
				t.Errorf("attempts %v, want %v", got, tc.wantAttempts)
			}
			for n, want := range tc.wantAvoid {
				if got := s.seen[n].avoid; !slices.Equal(got, want) {
					t.Errorf("attempt %d avoided %v, want %v", n, got, want)
				}
			}
			var canceled []int
			for _, n := range s.attempts() {
				if s.seen[n].canceled {
					canceled = append(canceled, n)
				}
			}
			if !slices.Equal(canceled, tc.wantCanceled) {
				t.Errorf("attempts canceled %v, want %v", canceled, tc.wantCanceled)
			}
			fired := 0
			for _, tm := range timers.timers() {
				if tm.d != 20*time.Millisecond {
					t.Errorf("timer of %v, want the delay", tm.d)
				}
				if tm.fired() {
					fired++
				} else if tm.Stop() {
					t.Error("a timer was left running")
				}
			}
			if fired != tc.wantFired {
				t.Errorf("%d timers fired, want %d", fired, tc.wantFired)
			}
		})
	}
}

// TestHedgeBudget: each hedge spends a retry from the budget; once it is
// spent, a failed first attempt is not followed by a hedge.
func TestHedgeBudget(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	clock := balancertest.NewClock(time.Unix(1000, 0))
	// One retry per window: 0.1/s × 10s, plus a negligible ratio.
	b := retry.NewBudget(retry.BudgetConfig{Ratio: 1e-6, MinPerSecond: 0.1, Clock: clock})
	timers := newFakeTimers()
	h, err := retry.NewHedger(retry.HedgeConfig{Delay: time.Second, Budget: b, Clock: clock, AfterFunc: timers.AfterFunc})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []codes.Code{codes.OK, codes.Unavailable} {
		s := newScript(map[int]step{1: {peer: "a", err: status.Err(codes.Unavailable, "down")}, 2: {peer: "b"}})
		err := h.Middleware()(s.endpoint)(newCall(context.Background()), &echopb.EchoRequest{}, &echopb.EchoResponse{})
		if got := status.Code(err); got != want {
			t.Fatalf("call %d: %v, want %v", i, err, want)
		}
		if want == codes.Unavailable && len(s.attempts()) != 1 {
			t.Fatalf("call %d hedged with the budget spent: attempts %v", i, s.attempts())
		}
	}
}

// TestHedgeNotAfterCallerIsDone: an attempt failing with a non-fatal code
// after the caller's context ended is not followed by another.
func TestHedgeNotAfterCallerIsDone(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	timers := newFakeTimers()
	h, err := retry.NewHedger(retry.HedgeConfig{
		Delay: time.Second, AfterFunc: timers.AfterFunc,
		NonFatalCodes: []codes.Code{codes.Unavailable, codes.Canceled},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := newScript(map[int]step{1: {peer: "a", hold: never}, 2: {peer: "b"}})
	done := make(chan error, 1)
	go func() {
		done <- h.Middleware()(s.endpoint)(newCall(ctx), &echopb.EchoRequest{}, &echopb.EchoResponse{})
	}()
	s.waitStarted(t, 1)
	cancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Fatalf("got %v", err)
	}
	if got := s.attempts(); !slices.Equal(got, []int{1}) {
		t.Fatalf("attempts %v after the caller gave up", got)
	}
}

// TestHedgeNotProto: a response that is not a proto.Message goes through once.
func TestHedgeNotProto(t *testing.T) {
	h, err := retry.NewHedger(retry.HedgeConfig{Delay: time.Millisecond, AfterFunc: func(time.Duration, func()) retry.Timer {
		t.Fatal("timer armed for a response that cannot be hedged")
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	var resp struct{ s string }
	err = h.Middleware()(func(ctx context.Context, req, resp any) error {
		calls++
		resp.(*struct{ s string }).s = "ok"
		return status.Err(codes.Unavailable, "down")
	})(newCall(context.Background()), "req", &resp)
	if calls != 1 || resp.s != "ok" || status.Code(err) != codes.Unavailable {
		t.Fatalf("calls %d resp %q err %v", calls, resp.s, err)
	}
}

// TestHedgeP95: with UseP95 the delay is Delay until MinSamples successful
// calls were seen, then their p95 (within the histogram's 12.5%), and Delay
// again once they are older than the window.
func TestHedgeP95(t *testing.T) {
	clock := balancertest.NewClock(time.Unix(1000, 0))
	timers := newFakeTimers()
	h, err := retry.NewHedger(retry.HedgeConfig{
		UseP95: true, MinSamples: 20, Window: 10 * time.Second,
		Clock: clock, AfterFunc: timers.AfterFunc,
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := h.Delay(); d != 10*time.Millisecond {
		t.Fatalf("delay before any call %v, want the 10ms default", d)
	}
	var latency time.Duration
	ep := h.Middleware()(func(ctx context.Context, req, resp any) error {
		clock.Advance(latency)
		return nil
	})
	call := func(i int) {
		latency = time.Duration(i) * time.Millisecond
		if err := ep(newCall(context.Background()), &echopb.EchoRequest{}, &echopb.EchoResponse{}); err != nil {
			t.Fatal(err)
		}
		<-timers.armed
	}
	for i := 1; i < 20; i++ {
		call(i)
	}
	if d := h.Delay(); d != 10*time.Millisecond {
		t.Fatalf("delay after 19 calls %v, want the 10ms default", d)
	}
	for i := 20; i <= 100; i++ {
		call(i)
	}
	// Latencies 1..100ms: the p95 is 95ms.
	d := h.Delay()
	if d < 95*time.Millisecond || d > 95*time.Millisecond*9/8 {
		t.Fatalf("delay %v, want the p95 of 95ms", d)
	}
	call(1)
	if tm := timers.timers(); tm[len(tm)-1].d != d {
		t.Fatalf("call armed its timer for %v, want %v", tm[len(tm)-1].d, d)
	}
	// A failed call does not count.
	latency = 200 * time.Millisecond
	failing := h.Middleware()(func(ctx context.Context, req, resp any) error {
		clock.Advance(latency)
		return status.Err(codes.InvalidArgument, "bad")
	})
	for range 10 {
		_ = failing(newCall(context.Background()), &echopb.EchoRequest{}, &echopb.EchoResponse{})
		<-timers.armed
	}
	if got := h.Delay(); got != d {
		t.Fatalf("delay %v after failed calls, want %v still", got, d)
	}
	clock.Advance(10 * time.Second)
	if got := h.Delay(); got != 10*time.Millisecond {
		t.Fatalf("delay %v after a quiet window, want the 10ms default", got)
	}
}

// TestHedgeP95Scales: the learnt delay is within the histogram's
// resolution (1µs below 16µs, 12.5% above) at every scale.
func TestHedgeP95Scales(t *testing.T) {
	for _, lat := range []time.Duration{3 * time.Microsecond, 100 * time.Microsecond, 7 * time.Millisecond, 2500 * time.Millisecond} {
		clock := balancertest.NewClock(time.Unix(1000, 0))
		h, err := retry.NewHedger(retry.HedgeConfig{
			UseP95: true, MinSamples: 20, Window: time.Minute, Clock: clock,
			AfterFunc: func(d time.Duration, f func()) retry.Timer { return time.AfterFunc(time.Hour, f) },
		})
		if err != nil {
			t.Fatal(err)
		}
		ep := h.Middleware()(func(ctx context.Context, req, resp any) error {
			clock.Advance(lat)
			return nil
		})
		for range 20 {
			if err := ep(newCall(context.Background()), &echopb.EchoRequest{}, &echopb.EchoResponse{}); err != nil {
				t.Fatal(err)
			}
		}
		if d := h.Delay(); d < lat || d > max(lat*9/8, lat+time.Microsecond) {
			t.Errorf("latency %v: delay %v", lat, d)
		}
	}
}

// TestHedgeConcurrent runs many calls at once through real timers and a
// tiny delay, so that hedges fire at every point of the first attempts,
// and checks that each caller sees one attempt's response and info, whole.
func TestHedgeConcurrent(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h, err := retry.NewHedger(retry.HedgeConfig{
		MaxAttempts: 3, Delay: 50 * time.Microsecond,
		Budget: retry.NewBudget(retry.BudgetConfig{Ratio: 10}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ep := h.Middleware()(func(ctx context.Context, req, resp any) error {
		info := callinfo.FromContext(ctx)
		peer := fmt.Sprintf("10.0.0.%d", info.Attempt)
		info.Peer = peer
		r := resp.(*echopb.EchoResponse)
		r.ServedBy = "partial"
		tm := time.NewTimer(time.Duration(rand.IntN(200)) * time.Microsecond)
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-ctx.Done():
			r.ServedBy = "canceled"
			return status.Wrap(codes.Canceled, "canceled", ctx.Err())
		}
		info.ResponseMetadata = metadata.Pairs("served-by", peer)
		if rand.IntN(4) == 0 {
			return status.Err(codes.Unavailable, peer+" down")
		}
		r.ServedBy = peer
		r.Message = req.(*echopb.EchoRequest).Message
		return nil
	})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				call := newCall(context.Background())
				msg := fmt.Sprintf("%d/%d", g, i)
				resp := &echopb.EchoResponse{}
				err := ep(call, &echopb.EchoRequest{Message: msg}, resp)
				peer := call.Info.Peer
				if got := call.Info.ResponseMetadata.Value("served-by"); got != peer {
					t.Errorf("info of %s: peer %s, metadata of %s", msg, peer, got)
				}
				if peer != fmt.Sprintf("10.0.0.%d", call.Info.Attempt) {
					t.Errorf("info of %s: peer %s on attempt %d", msg, peer, call.Info.Attempt)
				}
				if err != nil {
					if status.Code(err) != codes.Unavailable {
						t.Errorf("%s: %v", msg, err)
					}
					continue
				}
				if resp.ServedBy != peer || resp.Message != msg {
					t.Errorf("%s: resp %v, info peer %s", msg, resp, peer)
				}
			}
		})
	}
	wg.Wait()
}

func TestHedgeConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  retry.HedgeConfig
		want string
	}{
		{retry.HedgeConfig{}, "delay"},
		{retry.HedgeConfig{Delay: -1}, "delay"},
		{retry.HedgeConfig{Delay: 1, MaxAttempts: 1}, "maxAttempts"},
		{retry.HedgeConfig{Delay: 1, MaxAttempts: 6}, "maxAttempts"},
		{retry.HedgeConfig{Delay: 1, MaxAttempts: -2}, "maxAttempts"},
		{retry.HedgeConfig{UseP95: true, MinSamples: -1}, "minSamples"},
		{retry.HedgeConfig{UseP95: true, Window: time.Millisecond}, "window"},
		{retry.HedgeConfig{Delay: 1, NonFatalCodes: []codes.Code{codes.OK}}, "nonFatalCodes"},
		{retry.HedgeConfig{Delay: 1, NonFatalCodes: []codes.Code{99}}, "nonFatalCodes"},
	} {
		_, err := retry.NewHedger(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
	for _, cfg := range []retry.HedgeConfig{{Delay: time.Millisecond}, {UseP95: true}, {Delay: 1, MaxAttempts: 5}} {
		if _, err := retry.NewHedger(cfg); err != nil {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

// TestHedgeCutsTail is the wire test: two echo instances, one 50ms slower.
// Without hedging half the calls take 50ms; with a 5ms hedge the slow
// instance's calls are answered by the fast one.
func TestHedgeCutsTail(t *testing.T) {
	if testing.Short() {
		t.Skip("takes seconds of real time")
	}
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after the servers stop
	fast := echotest.Start(t, 0)
	slow := echotest.Serve(t, func(addr string) echopb.EchoServiceServer {
		return &echo.Service{ServedBy: addr, Delay: 50 * time.Millisecond}
	})
	p99 := func(mws ...endpoint.Middleware) time.Duration {
		c, err := client.New(fast+","+slow, client.WithBalancer(roundrobin.Builder{}), client.WithMiddleware(mws...))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cl := echopb.NewEchoServiceClient(c)
		call := func() time.Duration {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			if _, err := cl.Echo(ctx, &echopb.EchoRequest{Message: "x"}); err != nil {
				t.Fatal(err)
			}
			return time.Since(start)
		}
		for range 4 { // connect to both
			call()
		}
		lat := make([]time.Duration, 200)
		for i := range lat {
			lat[i] = call()
		}
		slices.Sort(lat)
		return lat[len(lat)*99/100-1]
	}
	// Round robin sends every other first attempt to the slow instance, so
	// the budget must allow a hedge for half the calls.
	h, err := retry.NewHedger(retry.HedgeConfig{Delay: 5 * time.Millisecond, Budget: retry.NewBudget(retry.BudgetConfig{Ratio: 1})})
	if err != nil {
		t.Fatal(err)
	}
	hedged := p99(h.Middleware())
	plain := p99()
	t.Logf("p99: %v hedged, %v plain", hedged, plain)
	if hedged >= 40*time.Millisecond {
		t.Errorf("hedged p99 %v, want well under the slow instance's 50ms", hedged)
	}
	if plain < 50*time.Millisecond {
		t.Errorf("plain p99 %v, want at least 50ms (is the slow instance slow?)", plain)
	}
}

func BenchmarkHedgeFastPath(b *testing.B) {
	for _, p95 := range []bool{false, true} {
		b.Run(fmt.Sprintf("p95=%v", p95), func(b *testing.B) {
			h, err := retry.NewHedger(retry.HedgeConfig{Delay: time.Second, UseP95: p95})
			if err != nil {
				b.Fatal(err)
			}
			ep := h.Middleware()(func(ctx context.Context, req, resp any) error {
				resp.(*echopb.EchoResponse).ServedBy = "a"
				return nil
			})
			call := newCall(context.Background())
			req, resp := &echopb.EchoRequest{}, &echopb.EchoResponse{}
			b.ReportAllocs()
			for b.Loop() {
				if err := ep(call, req, resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A call whose first attempt has not answered within the delay is sent
// again; the first reply wins and the slow attempt is cancelled.
func ExampleHedger() {
	h, err := retry.NewHedger(retry.HedgeConfig{Delay: time.Millisecond})
	if err != nil {
		panic(err)
	}
	send := func(ctx context.Context, req, resp any) error {
		info := callinfo.FromContext(ctx)
		if info.Attempt == 1 { // the first instance hangs
			info.Peer = "10.0.0.1:8080"
			<-ctx.Done()
			return ctx.Err()
		}
		info.Peer = "10.0.0.2:8080"
		resp.(*echopb.EchoResponse).ServedBy = info.Peer
		return nil
	}
	call := &callinfo.Carrier{Context: context.Background(), Info: callinfo.Info{Attempt: 1}}
	resp := &echopb.EchoResponse{}
	err = endpoint.Chain(h.Middleware())(send)(call, &echopb.EchoRequest{}, resp)
	fmt.Println(err, resp.ServedBy, call.Info.Attempt)
	// Output: <nil> 10.0.0.2:8080 2
}
