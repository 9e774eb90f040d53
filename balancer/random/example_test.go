package random_test

import (
	"fmt"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/balancer/random"
	"github.com/sluicerpc/sluice/discovery"
)

func Example() {
	p := random.Builder{}.Build([]discovery.Instance{
		{Addr: "10.0.0.1:8080", Weight: 90},
		{Addr: "10.0.0.2:8080", Weight: 10},
	})
	const n = 100000
	first := 0
	for i := 0; i < n; i++ {
		if res, _ := p.Pick(balancer.PickInfo{}); res.Instance.Addr == "10.0.0.1:8080" {
			first++
		}
	}
	fmt.Printf("10.0.0.1 gets %.1f of the calls\n", float64(first)/n)
	// Output: 10.0.0.1 gets 0.9 of the calls
}
