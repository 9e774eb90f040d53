// Package wrr picks instances by smooth weighted round-robin, the nginx
// algorithm: every instance's current weight grows by its weight, the
// largest is picked and loses the total. Over one cycle each instance is
// picked exactly in proportion to its weight (discovery.Instance
// EffectiveWeight), and picks of one instance are spread out: weights
// 5, 1, 1 give a a b a c a a, not a a a a a b c.
//
//	p := wrr.Builder{}.Build(instances)
//	res, err := p.Pick(balancer.PickInfo{Ctx: ctx})
//
// Build computes the whole cycle once, so Pick is one atomic increment and
// takes no lock. Weights are first divided by their greatest common
// divisor; a cycle longer than 16384 picks is shortened by scaling the
// weights down (every instance keeps at least one slot), which keeps each
// share within about 1/16384 of exact. Each picker starts at a random point of
// the cycle so that many clients do not pick in step.
package wrr

import (
	"math/rand/v2"
	"slices"
	"sync/atomic"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/discovery"
)

// maxCycle bounds the schedule a picker keeps.
const maxCycle = 1 << 14

// Builder builds smooth weighted round-robin pickers.
type Builder struct{}

// Build implements balancer.Builder.
func (Builder) Build(instances []discovery.Instance) balancer.Picker {
	weights := make([]int64, len(instances))
	for i := range instances {
		weights[i] = int64(instances[i].EffectiveWeight())
	}
	p := &picker{instances: instances, cycle: schedule(weights)}
	if n := len(p.cycle); n > 0 {
		p.next.Store(rand.Uint64N(uint64(n)))
	}
	return p
}

type picker struct {
	instances []discovery.Instance
	cycle     []int32 // instance indexes, one full cycle
	next      atomic.Uint64
}

func (p *picker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	n := uint64(len(p.cycle))
	if n == 0 {
		return balancer.PickResult{}, balancer.ErrNoInstance
	}
	i := p.cycle[(p.next.Add(1)-1)%n]
	return balancer.PickResult{Instance: &p.instances[i]}, nil
}

// schedule returns one cycle of smooth weighted round-robin over weights
// (all positive), as nginx would pick them starting from all current
// weights at zero.
func schedule(weights []int64) []int32 {
	if len(weights) == 0 {
		return nil
	}
	weights = reduce(weights)
	var total int64
	for _, w := range weights {
		total += w
	}

	// Instances of equal weight are picked in index order, one round at
	// a time: the one with fewer picks has the larger current weight, and
	// nginx breaks ties by index. So only the next instance of each
	// distinct weight can win a step, and a step costs O(distinct weights)
	// instead of O(instances): t·w - total·picks is that candidate's
	// current weight after step t.
	type class struct {
		w       int64
		members []int32 // instance indexes, ascending
		next    int     // members[next] is the candidate
		picks   int64   // picks of the candidate so far
	}
	var classes []*class
	byWeight := map[int64]*class{}
	for i, w := range weights {
		c := byWeight[w]
		if c == nil {
			c = &class{w: w}
			byWeight[w] = c
			classes = append(classes, c)
		}
		c.members = append(c.members, int32(i))
	}
	cycle := make([]int32, total)
	for t := int64(1); t <= total; t++ {
		var best *class
		var bestCur int64
		for _, c := range classes {
			cur := t*c.w - total*c.picks
			if best == nil || cur > bestCur || cur == bestCur && c.members[c.next] < best.members[best.next] {
				best, bestCur = c, cur
			}
		}
		cycle[t-1] = best.members[best.next]
		if best.next++; best.next == len(best.members) {
			best.next = 0
			best.picks++
		}
	}
	return cycle
}

// reduce divides weights by their greatest common divisor and, if the
// cycle would still be longer than maxCycle, scales them down to fit (or
// to one slot each, when there are more instances than that).
func reduce(weights []int64) []int64 {
	out := divideByGCD(slices.Clone(weights))
	var total int64
	for _, w := range out {
		total += w
	}
	if total <= maxCycle {
		return out
	}
	// Leave room for rounding the smallest weights up to 1.
	budget := float64(max(maxCycle-len(out), len(out)))
	for i, w := range out {
		out[i] = max(1, int64(float64(w)*budget/float64(total)+0.5))
	}
	return divideByGCD(out)
}

func divideByGCD(weights []int64) []int64 {
	g := int64(0)
	for _, w := range weights {
		a, b := g, w
		for b != 0 {
			a, b = b, a%b
		}
		g = a
	}
	for i := range weights {
		weights[i] /= g
	}
	return weights
}
