package balancertest_test

import (
	"fmt"
	"time"

	"github.com/sluicerpc/sluice/balancer/balancertest"
)

func ExampleClock() {
	clk := balancertest.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	start := clk.Now()
	clk.Advance(30 * time.Second)
	fmt.Println(clk.Now().Sub(start))
	// Output: 30s
}
