package retry_test

import (
	"context"
	"log/slog"
	"net"
	"testing"

	"github.com/sluicerpc/sluice/balancer/roundrobin"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/retry"
	"github.com/sluicerpc/sluice/server"
)

func startEcho(t *testing.T, failRate float64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := server.New(server.WithLogger(slog.New(slog.DiscardHandler)))
	echopb.RegisterEchoServiceServer(s, &echo.Service{ServedBy: ln.Addr().String(), FailRate: failRate})
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

// TestRetryGoesElsewhere: with one instance failing every call, each call
// that lands there is retried on the other one and succeeds.
func TestRetryGoesElsewhere(t *testing.T) {
	bad, good := startEcho(t, 1), startEcho(t, 0)
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
