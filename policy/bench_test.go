package policy_test

import (
	"context"
	"testing"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/examples/echo/echotest"
	"github.com/sluicerpc/sluice/internal/loadgen/echoimpl"
	"github.com/sluicerpc/sluice/policy"
	"github.com/sluicerpc/sluice/server"
)

// BenchmarkGovernance is one call over loopback, client and server in this
// process, many callers in parallel: "off" with no policy, "on" with
// rpcbench's GovernancePolicy on both sides (breakers per method and per
// instance, a retry policy, a token bucket and a concurrency bound, none of
// them firing). ns/op is CPU per call across both sides; compare the two
// with benchstat over several -count runs.
func BenchmarkGovernance(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			var copts []client.Option
			var sopts []server.Option
			if on {
				tb, err := policy.NewTable([]policy.TrafficPolicy{echoimpl.GovernancePolicy})
				if err != nil {
					b.Fatal(err)
				}
				copts = append(copts, client.WithPolicy(tb))
				sopts = append(sopts, server.WithPolicy(tb))
			}
			addr := echotest.ServeWith(b, func(addr string) echopb.EchoServiceServer { return &echo.Service{ServedBy: addr} }, sopts...)
			c, err := client.New(addr, copts...)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			cl := echopb.NewEchoServiceClient(c)
			payload := make([]byte, 1024)
			b.SetParallelism(50)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "x", Payload: payload}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
