package p2c

import (
	"runtime"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/balancer/balancertest"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// fakeBuilder returns a Builder reading clk.
func fakeBuilder(clk *balancertest.Clock) *Builder {
	t0 := clk.Now()
	b := &Builder{now: func() time.Duration { return clk.Now().Sub(t0) }}
	b.once.Do(b.init)
	return b
}

func TestSuite(t *testing.T) { balancertest.Suite(t, New()) }

// TestPrefersFastInstance simulates 4 s of traffic, a call every 100 µs,
// to one instance answering in 0.5-1 ms and one 20 ms slower; calls end
// when their latency has passed on the fake clock, so in-flight counts are
// real. After 0.5 s of warm-up at least 90% of picks must go to the fast
// one, and the slow one must still be probed (force pick) now and then.
func TestPrefersFastInstance(t *testing.T) {
	clk := balancertest.NewClock(time.Unix(1000, 0))
	ins := balancertest.Instances(2)
	fast, slow := ins[0].Addr, ins[1].Addr
	p := fakeBuilder(clk).Build(ins)

	type call struct {
		end  time.Time
		lat  time.Duration
		done func(balancer.DoneInfo)
	}
	var pending []call
	picks := map[string]int{}
	const step, total, warm = 100 * time.Microsecond, 40000, 5000
	for i := 0; i < total; i++ {
		clk.Advance(step)
		now := clk.Now()
		keep := pending[:0]
		for _, c := range pending {
			if c.end.After(now) {
				keep = append(keep, c)
			} else {
				c.done(balancer.DoneInfo{Latency: c.lat})
			}
		}
		pending = keep

		res, err := p.Pick(balancer.PickInfo{})
		if err != nil {
			t.Fatal(err)
		}
		lat := 500*time.Microsecond + time.Duration(i%6)*100*time.Microsecond
		if res.Instance.Addr == slow {
			lat += 20 * time.Millisecond
		}
		pending = append(pending, call{end: now.Add(lat), lat: lat, done: res.Done})
		if i >= warm {
			picks[res.Instance.Addr]++
		}
	}
	n := total - warm
	if share := float64(picks[fast]) / float64(n); share < 0.9 {
		t.Errorf("fast instance got %.1f%% of %d picks, want >= 90%%", 100*share, n)
	}
	if picks[slow] == 0 {
		t.Errorf("slow instance never probed in %v", time.Duration(n)*step)
	}
	t.Logf("fast %d, slow %d", picks[fast], picks[slow])
}

// stat returns the stats p keeps for addr.
func stat(p balancer.Picker, addr string) *stats {
	pp := p.(*picker)
	for i := range pp.instances {
		if pp.instances[i].Addr == addr {
			return pp.nodes[i].st
		}
	}
	return nil
}

func TestStatsSurviveSnapshots(t *testing.T) {
	b := New()
	ins := balancertest.Instances(3)
	p1 := b.Build(ins)
	res, _ := p1.Pick(balancer.PickInfo{})
	res.Done(balancer.DoneInfo{Latency: 7 * time.Millisecond})
	addr := res.Instance.Addr

	// A new snapshot without instance 2; p1 stays alive as the client
	// holds the old picker while building the new one.
	p2 := b.Build(ins[:2])
	if addr != ins[2].Addr {
		if s1, s2 := stat(p1, addr), stat(p2, addr); s1 != s2 || s2.ewma.Load() != int64(7*time.Millisecond) {
			t.Fatalf("stats for %s not carried over", addr)
		}
	}
	runtime.KeepAlive(p1)
	p1 = nil
	runtime.GC()
	p3 := b.Build(ins[:2])
	if got := b.stats.Len(); got != 2 {
		t.Fatalf("Builder keeps stats for %d instances, want 2 (instance 2 left)", got)
	}
	for _, in := range ins[:2] {
		if stat(p2, in.Addr) != stat(p3, in.Addr) {
			t.Fatalf("stats for %s replaced", in.Addr)
		}
	}
}

func TestCost(t *testing.T) {
	ms := float64(time.Millisecond)
	for _, tc := range []struct {
		name     string
		ewma     time.Duration
		inflight int64
		weight   int
		want     float64
	}{
		{"idle", 2 * time.Millisecond, 0, 0, 2 * ms},
		{"busy", 2 * time.Millisecond, 3, 0, 8 * ms},
		{"heavy instance", 2 * time.Millisecond, 3, 200, 4 * ms},
		{"light instance", 2 * time.Millisecond, 0, 25, 8 * ms},
		{"new, idle", 0, 0, 0, 0},
		{"new, probed", 0, 1, 0, float64(time.Second)},
		{"new, probed twice", 0, 2, 0, 2 * float64(time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &stats{}
			st.ewma.Store(int64(tc.ewma))
			st.inflight.Store(tc.inflight)
			n := node{st: st, scale: float64(discovery.DefaultWeight) / float64(discovery.Instance{Weight: tc.weight}.EffectiveWeight())}
			if got := n.cost(); got != tc.want {
				t.Fatalf("cost = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestObserve(t *testing.T) {
	clk := balancertest.NewClock(time.Unix(1000, 0))
	b := fakeBuilder(clk)
	unavailable := status.Err(codes.Unavailable, "down")
	notFound := status.Err(codes.NotFound, "no such order")
	for _, tc := range []struct {
		name  string
		first balancer.DoneInfo
		gap   time.Duration
		next  balancer.DoneInfo
		want  time.Duration
	}{
		{"first reply counts in full", balancer.DoneInfo{Latency: 5 * time.Millisecond}, 0, balancer.DoneInfo{Latency: 5 * time.Millisecond}, 5 * time.Millisecond},
		{"a sample right after barely moves it", balancer.DoneInfo{Latency: 10 * time.Millisecond}, 0, balancer.DoneInfo{Latency: time.Second}, 10 * time.Millisecond},
		{"a sample after long silence replaces it", balancer.DoneInfo{Latency: 10 * time.Millisecond}, time.Minute, balancer.DoneInfo{Latency: 30 * time.Millisecond}, 30 * time.Millisecond},
		{"a sample after tau weighs 1-1/e", balancer.DoneInfo{Latency: 0}, tau, balancer.DoneInfo{Latency: 1000 * time.Millisecond}, 632 * time.Millisecond},
		{"fast failure counts as 1 s", balancer.DoneInfo{Latency: time.Millisecond, Err: unavailable}, 0, balancer.DoneInfo{Latency: time.Millisecond, Err: unavailable}, time.Second},
		{"business error counts as is", balancer.DoneInfo{Latency: time.Millisecond, Err: notFound}, 0, balancer.DoneInfo{Latency: time.Millisecond, Err: notFound}, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := b.newStats()
			s.inflight.Store(2)
			s.observe(tc.first)
			clk.Advance(tc.gap)
			s.observe(tc.next)
			got := time.Duration(s.ewma.Load())
			if d := got - tc.want; d < -time.Millisecond || d > time.Millisecond {
				t.Fatalf("ewma = %v, want %v", got, tc.want)
			}
			if s.inflight.Load() != 0 {
				t.Fatalf("inflight = %d after two Dones, want 0", s.inflight.Load())
			}
		})
	}
}

// TestNewInstanceProbedOneAtATime: a new instance joins two busy ones; it
// takes one call, then no more until that call is done.
func TestNewInstanceProbedOneAtATime(t *testing.T) {
	clk := balancertest.NewClock(time.Unix(1000, 0))
	b := fakeBuilder(clk)
	ins := balancertest.Instances(2)
	p := b.Build(ins)
	for _, in := range ins { // teach both: 1 ms
		s := stat(p, in.Addr)
		s.inflight.Add(1)
		s.observe(balancer.DoneInfo{Latency: time.Millisecond})
	}
	ins = balancertest.Instances(3)
	p = b.Build(ins)
	fresh := ins[2].Addr
	var probe func(balancer.DoneInfo)
	for i := 0; i < 200; i++ {
		res, _ := p.Pick(balancer.PickInfo{})
		if res.Instance.Addr == fresh {
			if probe != nil {
				t.Fatalf("pick %d: second call to the new instance before the first ended", i)
			}
			probe = res.Done
			continue
		}
		res.Done(balancer.DoneInfo{Latency: time.Millisecond})
	}
	if probe == nil {
		t.Fatal("new instance never probed")
	}
	probe(balancer.DoneInfo{Latency: 500 * time.Microsecond})
	if got := time.Duration(stat(p, fresh).ewma.Load()); got != 500*time.Microsecond {
		t.Fatalf("new instance ewma = %v after its first reply", got)
	}
}

func TestForcePick(t *testing.T) {
	clk := balancertest.NewClock(time.Unix(1000, 0))
	p := fakeBuilder(clk).Build(balancertest.Instances(2))
	ins := p.(*picker).instances
	slow := stat(p, ins[1].Addr)
	stat(p, ins[0].Addr).ewma.Store(int64(time.Millisecond))
	slow.ewma.Store(int64(time.Second))
	slow.picked.Store(p.(*picker).clk.coarse.Load())

	count := func(n int) (slowPicks int) {
		for i := 0; i < n; i++ {
			res, _ := p.Pick(balancer.PickInfo{})
			if res.Instance.Addr == ins[1].Addr {
				slowPicks++
			}
			res.Done(balancer.DoneInfo{Latency: time.Duration(stat(p, res.Instance.Addr).ewma.Load())})
		}
		return slowPicks
	}
	if n := count(100); n != 0 {
		t.Fatalf("slow instance picked %d times within 1 s", n)
	}
	clk.Advance(forcePick + 1)
	if n := count(100); n != 1 {
		t.Fatalf("slow instance picked %d times after 1 s unpicked, want 1", n)
	}
}

func TestPickAndDoneDoNotAllocate(t *testing.T) {
	p := New().Build(balancertest.Instances(100))
	allocs := testing.AllocsPerRun(1000, func() {
		res, _ := p.Pick(balancer.PickInfo{})
		res.Done(balancer.DoneInfo{Latency: time.Millisecond})
	})
	if allocs != 0 {
		t.Fatalf("Pick+Done: %v allocs, want 0", allocs)
	}
}
