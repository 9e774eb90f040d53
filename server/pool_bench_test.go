package server_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
)

// BenchmarkConnsPerAddr is how client.DefaultConnsPerAddr was chosen.
func BenchmarkConnsPerAddr(b *testing.B) {
	for _, n := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			cl, stop := benchServer(b, client.WithConnsPerAddr(n))
			defer stop()
			req := &echopb.EchoRequest{Message: "bench", Payload: bytes.Repeat([]byte{'x'}, 1024)}
			b.ReportAllocs()
			b.SetParallelism(50)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if _, err := cl.Echo(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
