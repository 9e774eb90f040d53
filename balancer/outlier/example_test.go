package outlier_test

import (
	"fmt"
	"slices"
	"time"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/balancer/balancertest"
	"github.com/sluicerpc/sluice/balancer/outlier"
	"github.com/sluicerpc/sluice/balancer/roundrobin"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

func Example() {
	clk := balancertest.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	b, err := outlier.New(roundrobin.Builder{}, outlier.Config{Clock: clk})
	if err != nil {
		panic(err)
	}
	p := b.Build([]discovery.Instance{{Addr: "10.0.0.1:8080"}, {Addr: "10.0.0.2:8080"}, {Addr: "10.0.0.3:8080"}})

	// picked makes 30 calls: those to .1 fail, the others succeed.
	picked := func() []string {
		var addrs []string
		for i := 0; i < 30; i++ {
			res, _ := p.Pick(balancer.PickInfo{})
			var err error
			if res.Instance.Addr == "10.0.0.1:8080" {
				err = status.Err(codes.Unavailable, "connection refused")
			}
			res.Done(balancer.DoneInfo{Err: err})
			if !slices.Contains(addrs, res.Instance.Addr) {
				addrs = append(addrs, res.Instance.Addr)
			}
		}
		slices.Sort(addrs)
		return addrs
	}
	fmt.Println(picked()) // .1 fails 5 times in a row and is ejected
	fmt.Println(picked())
	clk.Advance(30 * time.Second)
	fmt.Println(picked()) // back, fails again: out for 60 s now
	// Output:
	// [10.0.0.1:8080 10.0.0.2:8080 10.0.0.3:8080]
	// [10.0.0.2:8080 10.0.0.3:8080]
	// [10.0.0.1:8080 10.0.0.2:8080 10.0.0.3:8080]
}
