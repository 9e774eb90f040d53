package retry_test

import (
	"context"
	"testing"

	"github.com/sluicerpc/sluice/balancer/roundrobin"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/examples/echo/echotest"
	"github.com/sluicerpc/sluice/retry"
)

// TestRetryGoesElsewhere: with one instance failing every call, each call
// that lands there is retried on the other one and succeeds.
func TestRetryGoesElsewhere(t *testing.T) {
	bad, good := echotest.Start(t, 1), echotest.Start(t, 0)
	p, err := retry.New(retry.Config{MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(bad+","+good, client.WithBalancer(roundrobin.Builder{}), client.WithMiddleware(p.Middleware()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := echopb.NewEchoServiceClient(c)
	for i := 0; i < 20; i++ {
		resp, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "x"})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if resp.ServedBy != good {
			t.Fatalf("served by %s", resp.ServedBy)
		}
	}
}
