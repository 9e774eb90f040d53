// Package roundrobin picks instances in turn.
//
//	p := roundrobin.Builder{}.Build(instances)
package roundrobin

import (
	"math/rand/v2"
	"sync/atomic"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/discovery"
)

// Builder builds round-robin pickers.
type Builder struct{}

// Build implements balancer.Builder. Each picker starts at a random
// offset so that many clients do not all hit the first instance first.
func (Builder) Build(instances []discovery.Instance) balancer.Picker {
	p := &picker{instances: instances}
	if n := len(instances); n > 0 {
		p.next.Store(uint64(rand.IntN(n)))
	}
	return p
}

type picker struct {
	instances []discovery.Instance
	next      atomic.Uint64
}

func (p *picker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	n := uint64(len(p.instances))
	if n == 0 {
		return balancer.PickResult{}, balancer.ErrNoInstance
	}
	i := (p.next.Add(1) - 1) % n
	return balancer.PickResult{Instance: &p.instances[i]}, nil
}
