package outlier_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/balancer/balancertest"
	"github.com/sluicerpc/sluice/balancer/outlier"
	"github.com/sluicerpc/sluice/balancer/p2c"
	"github.com/sluicerpc/sluice/balancer/roundrobin"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

var (
	errUnavailable = status.Err(codes.Unavailable, "connection refused")
	errNotFound    = status.Err(codes.NotFound, "no such order")
)

func TestSuite(t *testing.T) {
	b, err := outlier.New(roundrobin.Builder{}, outlier.Config{})
	if err != nil {
		t.Fatal(err)
	}
	balancertest.Suite(t, b)
}

// env is a picker over n instances with a fake clock.
type env struct {
	t   *testing.T
	clk *balancertest.Clock
	b   *outlier.Builder
	ins []discovery.Instance
	p   balancer.Picker
}

func newEnv(t *testing.T, n int, cfg outlier.Config, inner balancer.Builder) *env {
	t.Helper()
	if inner == nil {
		inner = roundrobin.Builder{}
	}
	clk := balancertest.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg.Clock = clk
	b, err := outlier.New(inner, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ins := balancertest.Instances(n)
	return &env{t: t, clk: clk, b: b, ins: ins, p: b.Build(ins)}
}

// callTo picks until it reaches addr and ends that call with err; the
// other picks end well. It reports false if addr was not reached: it is
// out.
func (e *env) callTo(p balancer.Picker, addr string, err error) bool {
	e.t.Helper()
	for i := 0; i < 10*len(e.ins); i++ {
		res, perr := p.Pick(balancer.PickInfo{})
		if perr != nil {
			return false
		}
		if res.Instance.Addr == addr {
			res.Done(balancer.DoneInfo{Err: err})
			return true
		}
		res.Done(balancer.DoneInfo{})
	}
	return false
}

// failTo fails n calls to addr, as far as it can be reached.
func (e *env) failTo(p balancer.Picker, addr string, n int) {
	for i := 0; i < n && e.callTo(p, addr, errUnavailable); i++ {
	}
}

// out returns the addresses p does not pick.
func (e *env) out(p balancer.Picker, from []discovery.Instance) []string {
	e.t.Helper()
	seen := map[string]bool{}
	for i := 0; i < 20*len(from); i++ {
		res, err := p.Pick(balancer.PickInfo{})
		if err != nil {
			break
		}
		seen[res.Instance.Addr] = true
		res.Done(balancer.DoneInfo{})
	}
	var out []string
	for _, in := range from {
		if !seen[in.Addr] {
			out = append(out, in.Addr)
		}
	}
	return out
}

func TestConsecutiveFailures(t *testing.T) {
	outcomes := map[byte]error{
		'f': errUnavailable,
		'd': status.Err(codes.DeadlineExceeded, "deadline"),
		'D': context.DeadlineExceeded,
		'i': status.Err(codes.Internal, "internal"),
		'u': errors.New("plain error, code Unknown"),
		'r': status.Err(codes.ResourceExhausted, "shed"),
		'n': errNotFound,
		'c': status.Err(codes.Canceled, "canceled"),
		'C': context.Canceled,
		's': nil,
	}
	for _, tc := range []struct {
		calls string
		out   bool
	}{
		{"ffff", false},
		{"fffff", true},
		{"ffffsffff", false},
		{"ffffsfffff", true},
		{"ffffnffff", false}, // an answer, even no, resets
		{"ffffcCf", true},    // canceled calls count neither way
		{"ddDii", true},
		{"uuuuu", true},
		{"rrrrrrrrrr", false}, // shedding is not breaking
		{"nnnnnnnnnn", false},
	} {
		t.Run(tc.calls, func(t *testing.T) {
			e := newEnv(t, 4, outlier.Config{}, nil)
			target := e.ins[1].Addr
			for i := 0; i < len(tc.calls); i++ {
				if !e.callTo(e.p, target, outcomes[tc.calls[i]]) {
					t.Fatalf("call %d: %s already out", i, target)
				}
			}
			got := slices.Contains(e.out(e.p, e.ins), target)
			if got != tc.out {
				t.Fatalf("after %s: out = %v, want %v", tc.calls, got, tc.out)
			}
		})
	}
}

func TestConfiguredThreshold(t *testing.T) {
	cfg := outlier.Config{ConsecutiveFailures: 2, IsFailure: func(err error) bool {
		return status.Code(err) == codes.NotFound
	}}
	for _, tc := range []struct {
		errs []error
		out  bool
	}{
		{[]error{errUnavailable, errUnavailable, errUnavailable}, false},
		{[]error{errUnavailable, errNotFound}, false},
		{[]error{errNotFound, errNotFound}, true},
	} {
		e := newEnv(t, 4, cfg, nil)
		target := e.ins[0].Addr
		for _, err := range tc.errs {
			e.callTo(e.p, target, err)
		}
		if got := slices.Contains(e.out(e.p, e.ins), target); got != tc.out {
			t.Errorf("after %v: out = %v, want %v", tc.errs, got, tc.out)
		}
	}
}

func TestEjectionTimes(t *testing.T) {
	type ejection struct {
		addr string
		d    time.Duration
	}
	var got []ejection
	e := newEnv(t, 4, outlier.Config{OnEject: func(addr string, d time.Duration) { got = append(got, ejection{addr, d}) }}, nil)
	target := e.ins[2].Addr
	isOut := func() bool { return slices.Contains(e.out(e.p, e.ins), target) }
	want := []time.Duration{30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300}
	for i, d := range want {
		d *= time.Second
		e.failTo(e.p, target, 5)
		if !isOut() {
			t.Fatalf("ejection %d: not out", i+1)
		}
		e.clk.Advance(d - time.Second)
		if !isOut() {
			t.Fatalf("ejection %d: back before %v", i+1, d)
		}
		e.clk.Advance(time.Second)
		if isOut() {
			t.Fatalf("ejection %d: still out after %v", i+1, d)
		}
		if n := len(got); n != i+1 || got[n-1] != (ejection{target, d}) {
			t.Fatalf("ejection %d: OnEject calls %v, want the last to be %s for %v", i+1, got, target, d)
		}
	}
	// 300 s in takes ten off the count of twelve: the next one is the third.
	e.clk.Advance(300 * time.Second)
	e.failTo(e.p, target, 5)
	e.clk.Advance(89 * time.Second)
	if !isOut() {
		t.Fatal("after 300 s in: back before 90 s")
	}
	e.clk.Advance(time.Second)
	if isOut() {
		t.Fatal("after 300 s in: still out after 90 s")
	}
}

func TestMaxEjectedPercent(t *testing.T) {
	for _, tc := range []struct {
		n, percent, want int
	}{
		{1, 0, 0}, {2, 0, 1}, {3, 0, 1}, {4, 0, 2}, {5, 0, 2}, {10, 0, 5},
		{10, 10, 1}, {3, 100, 3}, {4, 1, 0},
	} {
		e := newEnv(t, tc.n, outlier.Config{MaxEjectedPercent: tc.percent}, nil)
		for round := 0; round < 3; round++ {
			for _, in := range e.ins {
				e.failTo(e.p, in.Addr, 5)
			}
		}
		if got := len(e.out(e.p, e.ins)); got != tc.want {
			t.Errorf("%d instances, %d%%: %d out, want %d", tc.n, tc.percent, got, tc.want)
		}
		if tc.want == tc.n {
			if _, err := e.p.Pick(balancer.PickInfo{}); !errors.Is(err, balancer.ErrNoInstance) {
				t.Errorf("all %d out: Pick error %v, want ErrNoInstance", tc.n, err)
			}
		}
	}
}

func TestEjectionOutlastsSnapshots(t *testing.T) {
	e := newEnv(t, 4, outlier.Config{}, nil)
	target := e.ins[0].Addr
	e.failTo(e.p, target, 5)
	more := balancertest.Instances(6)
	p := e.b.Build(more)
	if out := e.out(p, more); !slices.Equal(out, []string{target}) {
		t.Fatalf("new snapshot: out = %v, want [%s]", out, target)
	}
	e.clk.Advance(30 * time.Second)
	if out := e.out(p, more); len(out) != 0 {
		t.Fatalf("after 30 s: out = %v", out)
	}
}

// TestSubsetLimit: ejections made through one picker count against the
// limit of another picker over a subset, whose earliest ejections hold.
func TestSubsetLimit(t *testing.T) {
	e := newEnv(t, 4, outlier.Config{}, nil)
	a, b := e.ins[0].Addr, e.ins[1].Addr
	sub := e.ins[:2]
	ps := e.b.Build(sub)
	e.failTo(e.p, a, 5)
	e.clk.Advance(time.Second)
	e.failTo(e.p, b, 5)
	if out := e.out(e.p, e.ins); !slices.Equal(out, []string{a, b}) {
		t.Fatalf("whole set: out = %v, want [%s %s]", out, a, b)
	}
	if out := e.out(ps, sub); !slices.Equal(out, []string{a}) {
		t.Fatalf("subset of 2: out = %v, want [%s]", out, a)
	}
	e.clk.Advance(29 * time.Second) // a is back, b out for 1 s more
	if out := e.out(ps, sub); !slices.Equal(out, []string{b}) {
		t.Fatalf("subset after a is back: out = %v, want [%s]", out, b)
	}
	// And failing through the subset's picker cannot eject a now.
	e.failTo(ps, a, 10)
	if out := e.out(ps, sub); !slices.Equal(out, []string{b}) {
		t.Fatalf("subset: out = %v, want [%s]", out, b)
	}
}

// counting wraps a Builder, counting Builds and the Dones of its pickers.
type counting struct {
	inner  balancer.Builder
	builds atomic.Int64
	dones  atomic.Int64
}

func (c *counting) Build(ins []discovery.Instance) balancer.Picker {
	c.builds.Add(1)
	return countingPicker{c, c.inner.Build(ins)}
}

type countingPicker struct {
	c *counting
	p balancer.Picker
}

func (cp countingPicker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	res, err := cp.p.Pick(info)
	if err == nil {
		inner := res.Done
		res.Done = func(di balancer.DoneInfo) {
			cp.c.dones.Add(1)
			if inner != nil {
				inner(di)
			}
		}
	}
	return res, err
}

func TestInnerBuiltOnlyOnChange(t *testing.T) {
	c := &counting{inner: roundrobin.Builder{}}
	e := newEnv(t, 4, outlier.Config{}, c)
	builds := func(want int64, when string) {
		t.Helper()
		if got := c.builds.Load(); got != want {
			t.Fatalf("%s: %d inner Builds, want %d", when, got, want)
		}
	}
	e.out(e.p, e.ins)
	builds(1, "no ejection")
	e.failTo(e.p, e.ins[0].Addr, 5)
	e.out(e.p, e.ins)
	builds(2, "one ejection")
	e.clk.Advance(10 * time.Second)
	e.out(e.p, e.ins)
	builds(2, "time passing, same ejection")
	e.clk.Advance(20 * time.Second)
	e.out(e.p, e.ins)
	builds(2, "back to the whole set")
	if c.dones.Load() == 0 {
		t.Fatal("inner Done never called")
	}
}

func TestInnerDoneCalledOnce(t *testing.T) {
	c := &counting{inner: p2c.New()}
	e := newEnv(t, 4, outlier.Config{}, c)
	const n = 1000
	for i := 0; i < n; i++ {
		res, err := e.p.Pick(balancer.PickInfo{})
		if err != nil {
			t.Fatal(err)
		}
		var err2 error
		if res.Instance.Addr == e.ins[3].Addr {
			err2 = errUnavailable
		}
		res.Done(balancer.DoneInfo{Err: err2, Latency: time.Millisecond})
		res.Done(balancer.DoneInfo{Err: err2, Latency: time.Millisecond}) // a buggy caller
	}
	if got := c.dones.Load(); got != n {
		t.Fatalf("inner Done called %d times for %d calls", got, n)
	}
	if out := e.out(e.p, e.ins); !slices.Equal(out, []string{e.ins[3].Addr}) {
		t.Fatalf("out = %v, want [%s]", out, e.ins[3].Addr)
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled objects on purpose")
	}
	for name, inner := range map[string]balancer.Builder{"roundrobin": roundrobin.Builder{}, "p2c": p2c.New()} {
		b, _ := outlier.New(inner, outlier.Config{})
		p := b.Build(balancertest.Instances(100))
		allocs := testing.AllocsPerRun(1000, func() {
			res, _ := p.Pick(balancer.PickInfo{})
			res.Done(balancer.DoneInfo{Latency: time.Millisecond})
		})
		if allocs != 0 {
			t.Errorf("over %s: %v allocs per Pick+Done, want 0", name, allocs)
		}
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  outlier.Config
		ok   bool
	}{
		{"zero", outlier.Config{}, true},
		{"all set", outlier.Config{ConsecutiveFailures: 3, BaseEjection: time.Second, MaxEjection: time.Minute, MaxEjectedPercent: 100}, true},
		{"negative failures", outlier.Config{ConsecutiveFailures: -1}, false},
		{"negative base", outlier.Config{BaseEjection: -time.Second}, false},
		{"negative max", outlier.Config{MaxEjection: -time.Second}, false},
		{"percent over 100", outlier.Config{MaxEjectedPercent: 101}, false},
		{"negative percent", outlier.Config{MaxEjectedPercent: -1}, false},
		{"max below base", outlier.Config{BaseEjection: 10 * time.Minute}, false},
	} {
		_, err := outlier.New(roundrobin.Builder{}, tc.cfg)
		if (err == nil) != tc.ok {
			t.Errorf("%s: New error %v, want ok %v", tc.name, err, tc.ok)
		}
		if err != nil && status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: code %v, want InvalidArgument", tc.name, status.Code(err))
		}
	}
	if _, err := outlier.New(nil, outlier.Config{}); err == nil {
		t.Error("New(nil inner) succeeded")
	}
}
