// Package random picks instances at random in proportion to their weights
// (discovery.Instance EffectiveWeight): a draw in [0, total weight) and a
// binary search over the running sums. When all weights are equal it
// draws an index directly. The random source is math/rand/v2's, which
// is per-thread and takes no lock.
//
//	p := random.Builder{}.Build(instances)
//	res, err := p.Pick(balancer.PickInfo{Ctx: ctx})
package random

import (
	"math/rand/v2"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/discovery"
)

// Builder builds weighted random pickers.
type Builder struct{}

// Build implements balancer.Builder.
func (Builder) Build(instances []discovery.Instance) balancer.Picker {
	p := &picker{instances: instances, sums: make([]uint64, 0, len(instances))}
	equal := true
	var total uint64
	for i := range instances {
		w := uint64(instances[i].EffectiveWeight())
		total += w
		p.sums = append(p.sums, total)
		equal = equal && w == uint64(instances[0].EffectiveWeight())
	}
	if equal {
		p.sums = nil
	}
	return p
}

type picker struct {
	instances []discovery.Instance
	// sums[i] is the total weight of instances[:i+1]; nil when all
	// weights are equal.
	sums []uint64
}

func (p *picker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	n := len(p.instances)
	if n == 0 {
		return balancer.PickResult{}, balancer.ErrNoInstance
	}
	if p.sums == nil {
		return balancer.PickResult{Instance: &p.instances[rand.IntN(n)]}, nil
	}
	// The first i with r < sums[i].
	r := rand.Uint64N(p.sums[n-1])
	lo, hi := 0, n-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r < p.sums[mid] {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return balancer.PickResult{Instance: &p.instances[lo]}, nil
}
