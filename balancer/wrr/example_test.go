package wrr_test

import (
	"fmt"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/balancer/wrr"
	"github.com/sluicerpc/sluice/discovery"
)

func Example() {
	p := wrr.Builder{}.Build([]discovery.Instance{
		{Addr: "10.0.0.1:8080", Weight: 50},
		{Addr: "10.0.0.2:8080", Weight: 10},
		{Addr: "10.0.0.3:8080", Weight: 10},
	})
	// One cycle is 7 picks: 5, 1 and 1, wherever the picker starts.
	count := map[string]int{}
	for i := 0; i < 7; i++ {
		res, _ := p.Pick(balancer.PickInfo{})
		count[res.Instance.Addr]++
	}
	fmt.Println(count)
	// Output: map[10.0.0.1:8080:5 10.0.0.2:8080:1 10.0.0.3:8080:1]
}
