package route_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/sluicerpc/sluice/route"
)

const draws = 100_000

// near reports whether got, a share measured over n draws, is as close to
// want as the issue asks (±2 percentage points) and as statistics allow
// (4.5 standard deviations, a tighter bound that catches a biased draw:
// ±0.42 points at 10% over 100k draws).
func near(got, want float64, n int) bool {
	sigma := math.Sqrt(want * (1 - want) / float64(n))
	d := math.Abs(got - want)
	return d <= 0.02 && d <= 4.5*sigma+1e-9
}

// share counts, over draws decisions with random Inputs, how often each
// subset name comes up.
func shares(tb *route.Table, in route.Input, seed uint64) map[string]float64 {
	r := rng(seed)
	n := map[string]int{}
	for range draws {
		in.Rand = r.next()
		n[tb.Decide(in).Subset.Name]++
	}
	out := map[string]float64{}
	for k, v := range n {
		out[k] = float64(v) / draws
	}
	return out
}

// TestWeights: over 100k decisions every destination's share is near its
// normalised weight; weight 0 gets nothing; all weights 0 share equally.
func TestWeights(t *testing.T) {
	cases := []struct {
		name    string
		weights []int
		want    []float64
	}{
		{"50/30/20", []int{50, 30, 20}, []float64{.5, .3, .2}},
		{"normalised 6/3/1", []int{6, 3, 1}, []float64{.6, .3, .1}},
		{"zero gets none", []int{80, 0, 20}, []float64{.8, 0, .2}},
		{"all zero share equally", []int{0, 0}, []float64{.5, .5}},
		{"all to one", []int{0, 100}, []float64{0, 1}},
		{"unequal 1000000/1", []int{999_999, 1}, []float64{.999999, .000001}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rule := route.Rule{Service: svc, Routes: []route.Route{{}}}
			for i, w := range c.weights {
				rule.Routes[0].Destinations = append(rule.Routes[0].Destinations, route.Destination{Name: fmt.Sprint(i), Subset: map[string]string{"v": fmt.Sprint(i)}, Weight: w})
			}
			tb, err := route.NewTable([]route.Rule{rule}, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := shares(tb, route.Input{Service: svc}, 1)
			for i, want := range c.want {
				g := got[fmt.Sprint(i)]
				if !near(g, want, draws) {
					t.Errorf("destination %d: share %.5f, want %.5f", i, g, want)
				}
			}
		})
	}
}

// TestPercentages: mirror, delay and abort fire on their share of the calls
// over 100k calls, independently of each other and of the destination
// drawn.
func TestPercentages(t *testing.T) {
	tb := table(t, `
apiVersion: sluice/v1
kind: RouteRule
metadata: {name: p}
spec:
  service: shop.v1.OrderService
  routes:
  - destinations: [{subset: {v: a}, weight: 1}, {subset: {v: b}, weight: 1}]
    mirror: {subset: {v: shadow}, percent: 10}
    fault: {delay: {fixed: 1ms, percent: 20}, abort: {code: INTERNAL, percent: 5}}
`)
	r := rng(7)
	var mirrored, delayed, aborted, both, mirroredA, a int
	for range draws {
		d := tb.Decide(route.Input{Service: svc, Rand: r.next()})
		if d.Mirror != nil {
			mirrored++
		}
		if d.Delay > 0 {
			delayed++
		}
		if d.Abort != nil {
			aborted++
		}
		if d.Delay > 0 && d.Abort != nil {
			both++
		}
		if d.Subset.Name == "v=a" {
			a++
			if d.Mirror != nil {
				mirroredA++
			}
		}
	}
	check := func(what string, n, of int, want float64) {
		t.Helper()
		if got := float64(n) / float64(of); !near(got, want, of) {
			t.Errorf("%s: %.4f, want %.4f", what, got, want)
		}
	}
	check("mirrored", mirrored, draws, .10)
	check("delayed", delayed, draws, .20)
	check("aborted", aborted, draws, .05)
	check("delayed and aborted", both, draws, .20*.05)
	check("mirrored of subset a", mirroredA, a, .10)

	// Percent 0 never fires; unset is 100.
	tb = table(t, `
apiVersion: sluice/v1
kind: RouteRule
metadata: {name: p}
spec:
  service: shop.v1.OrderService
  routes:
  - mirror: {subset: {v: shadow}, percent: 0}
    fault: {delay: {fixed: 1ms}, abort: {code: INTERNAL, percent: 0}}
`)
	r = rng(8)
	for range 1000 {
		d := tb.Decide(route.Input{Service: svc, Rand: r.next()})
		if d.Mirror != nil || d.Abort != nil || d.Delay == 0 {
			t.Fatalf("percent 0 fired or unset did not: %+v", d)
		}
	}
}

// TestSticky: one sticky value always lands on one subset, whatever the
// random draw; values spread over subsets by weight; growing a subset's
// weight keeps the users it had.
func TestSticky(t *testing.T) {
	rule := func(v2 int) *route.Table {
		tb, err := route.NewTable([]route.Rule{{Service: svc, Routes: []route.Route{{
			Sticky: "X-User-Id",
			Destinations: []route.Destination{
				{Name: "v1", Subset: map[string]string{"version": "v1"}, Weight: 100 - v2},
				{Name: "v2", Subset: map[string]string{"version": "v2"}, Weight: v2},
			},
		}}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tb
	}
	tb10, tb30 := rule(10), rule(30)
	r := rng(3)
	const users = 20_000
	inV2 := 0
	for u := range users {
		user := fmt.Sprintf("user-%d", u)
		md := kv("x-user-id", user)
		first := tb30.Decide(route.Input{Service: svc, Metadata: md, Rand: r.next()}).Subset.Name
		for range 5 {
			if got := tb30.Decide(route.Input{Service: svc, Metadata: md, Rand: r.next()}).Subset.Name; got != first {
				t.Fatalf("%s moved from %s to %s", user, first, got)
			}
		}
		if first == "v2" {
			inV2++
		}
		if tb10.Decide(route.Input{Service: svc, Metadata: md}).Subset.Name == "v2" && first != "v2" {
			t.Fatalf("%s was on v2 at 10%% and left it at 30%%", user)
		}
	}
	if got := float64(inV2) / users; !near(got, .3, users) {
		t.Errorf("share of users on v2: %.4f, want 0.3", got)
	}
	// Calls without the key are drawn at random.
	got := shares(tb30, route.Input{Service: svc, Metadata: kv("x-other", "1")}, 4)
	if !near(got["v2"], .3, draws) {
		t.Errorf("share without the sticky key: %.4f, want 0.3", got["v2"])
	}
}
