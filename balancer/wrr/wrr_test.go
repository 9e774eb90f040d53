package wrr

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/balancer/balancertest"
	"github.com/sluicerpc/sluice/discovery"
)

func TestSuite(t *testing.T) { balancertest.Suite(t, Builder{}) }

// nginx is the reference: ngx_http_upstream_get_peer, one pick per step.
func nginx(weights []int64, steps int) []int32 {
	var total int64
	for _, w := range weights {
		total += w
	}
	cur := make([]int64, len(weights))
	out := make([]int32, steps)
	for s := range out {
		best := -1
		for i, w := range weights {
			cur[i] += w
			if best == -1 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out[s] = int32(best)
	}
	return out
}

func TestScheduleMatchesNginx(t *testing.T) {
	cases := [][]int64{
		{1}, {5, 1, 1}, {1, 1, 1}, {100, 100, 100, 100}, {3, 2}, {2, 3},
		{10, 90}, {1, 2, 3, 4, 5, 6}, {7, 7, 3, 3, 3, 1}, {100, 50, 30, 100, 50},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		ws := make([]int64, 1+r.IntN(12))
		for j := range ws {
			ws[j] = 1 + r.Int64N(int64(1+r.IntN(40)))
		}
		cases = append(cases, ws)
	}
	for _, ws := range cases {
		got := schedule(ws)
		red := divideByGCD(slices.Clone(ws))
		want := nginx(red, len(got))
		if !slices.Equal(got, want) {
			t.Fatalf("weights %v:\n got %v\nwant %v", ws, got, want)
		}
		// One full cycle: nginx is back where it started.
		var total int64
		for _, w := range red {
			total += w
		}
		if int64(len(got)) != total {
			t.Fatalf("weights %v: cycle of %d, want %d", ws, len(got), total)
		}
	}
}

func TestNginxExample(t *testing.T) {
	names := "abc"
	var b strings.Builder
	for _, i := range schedule([]int64{5, 1, 1}) {
		b.WriteByte(names[i])
	}
	if got := b.String(); got != "aabacaa" {
		t.Fatalf("weights 5,1,1 give %q, want aabacaa", got)
	}
}

// TestExactOverACycle picks through a picker (random start) and checks
// every window of one cycle holds each instance exactly weight/gcd times.
func TestExactOverACycle(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int
		want    []int // picks per cycle
	}{
		{"equal", []int{0, 0, 0}, []int{1, 1, 1}},
		{"default is 100", []int{0, 50}, []int{2, 1}},
		{"canary", []int{90, 10}, []int{9, 1}},
		{"mixed", []int{30, 20, 50, 20}, []int{3, 2, 5, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ins := balancertest.Instances(len(tc.weights))
			for i, w := range tc.weights {
				ins[i].Weight = w
			}
			p := Builder{}.Build(ins)
			cycle := 0
			for _, w := range tc.want {
				cycle += w
			}
			picks := make([]int, 5*cycle)
			for i := range picks {
				res, err := p.Pick(balancer.PickInfo{})
				if err != nil {
					t.Fatal(err)
				}
				picks[i] = index(ins, res.Instance)
			}
			for start := 0; start+cycle <= len(picks); start++ {
				count := make([]int, len(ins))
				for _, i := range picks[start : start+cycle] {
					count[i]++
				}
				if !slices.Equal(count, tc.want) {
					t.Fatalf("window at %d: counts %v, want %v", start, count, tc.want)
				}
			}
		})
	}
}

func TestLongCycleIsScaled(t *testing.T) {
	ws := make([]int64, 100)
	for i := range ws {
		ws[i] = int64(1000 + 7*i) // gcd 1, total 134650
	}
	c := schedule(ws)
	if len(c) > maxCycle {
		t.Fatalf("cycle of %d, want <= %d", len(c), maxCycle)
	}
	count := make([]int, len(ws))
	for _, i := range c {
		count[i]++
	}
	var total int64
	for _, w := range ws {
		total += w
	}
	for i, w := range ws {
		want := float64(w) / float64(total)
		got := float64(count[i]) / float64(len(c))
		if d := got - want; d > 1.0/maxCycle || d < -1.0/maxCycle {
			t.Errorf("instance %d: share %.5f, want %.5f", i, got, want)
		}
	}
	// A tiny weight next to huge ones keeps one slot.
	c = schedule([]int64{1 << 40, 1})
	if !slices.Contains(c, 1) {
		t.Fatal("instance of weight 1 lost its slot")
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	p := Builder{}.Build(balancertest.Instances(100))
	if a := testing.AllocsPerRun(1000, func() { p.Pick(balancer.PickInfo{}) }); a != 0 {
		t.Fatalf("Pick: %v allocs, want 0", a)
	}
}

func index(ins []discovery.Instance, in *discovery.Instance) int {
	for i := range ins {
		if &ins[i] == in {
			return i
		}
	}
	return -1
}
