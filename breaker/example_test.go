package breaker_test

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/balancer/balancertest"
	"github.com/sluicerpc/sluice/breaker"
	"github.com/sluicerpc/sluice/status"
)

func Example() {
	clock := balancertest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b, err := breaker.New("order.Order/Get", breaker.Config{
		MinRequests: 4,
		Probes:      1,
		Clock:       clock,
		OnStateChange: func(name string, from, to breaker.State) {
			fmt.Printf("%s: %s -> %s\n", name, from, to)
		},
	})
	if err != nil {
		panic(err)
	}
	call := func(callErr error) error {
		tok, err := b.Allow()
		if err != nil {
			return err
		}
		b.Record(tok, callErr, 3*time.Millisecond)
		return callErr
	}

	for range 4 {
		call(status.Err(codes.Unavailable, "connection refused"))
	}
	err = call(nil)
	fmt.Println(err, errors.Is(err, breaker.ErrOpen))

	clock.Advance(5 * time.Second)
	fmt.Println(call(nil))
	// Output:
	// order.Order/Get: closed -> open
	// rpc error: code = Unavailable desc = breaker: order.Order/Get is open true
	// order.Order/Get: open -> half-open
	// order.Order/Get: half-open -> closed
	// <nil>
}
