package p2c_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/balancer/p2c"
	"github.com/sluicerpc/sluice/discovery"
)

func Example() {
	p := p2c.New().Build([]discovery.Instance{
		{Addr: "10.0.0.1:8080"},
		{Addr: "10.0.0.2:8080"},
	})
	info := balancer.PickInfo{Ctx: context.Background(), Method: "Get"}

	// New instances are probed one call at a time: the first two picks
	// reach both. Their replies teach the picker that .1 is faster.
	latency := map[string]time.Duration{"10.0.0.1:8080": 2 * time.Millisecond, "10.0.0.2:8080": 40 * time.Millisecond}
	a, _ := p.Pick(info)
	b, _ := p.Pick(info)
	a.Done(balancer.DoneInfo{Latency: latency[a.Instance.Addr]})
	b.Done(balancer.DoneInfo{Latency: latency[b.Instance.Addr]})

	res, _ := p.Pick(info)
	fmt.Println(res.Instance.Addr)
	res.Done(balancer.DoneInfo{Latency: 2 * time.Millisecond})
	// Output: 10.0.0.1:8080
}
