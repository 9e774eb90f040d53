package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/server"
)

// benchServer starts an echo server and a client to it.
func benchServer(b *testing.B, copts ...client.Option) (echopb.EchoServiceClient, func()) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := server.New()
	echopb.RegisterEchoServiceServer(s, &echo.Service{ServedBy: ln.Addr().String()})
	go s.Serve(ln)
	c, err := client.New(ln.Addr().String(), copts...)
	if err != nil {
		b.Fatal(err)
	}
	return echopb.NewEchoServiceClient(c), func() { c.Close(); s.Stop() }
}

// BenchmarkCall measures one full call over loopback, client and server in
// this process: allocs/op counts both sides.
func BenchmarkCall(b *testing.B) {
	for _, size := range []int{16, 1024} {
		b.Run(sizeName(size), func(b *testing.B) {
			cl, stop := benchServer(b)
			defer stop()
			req := &echopb.EchoRequest{Message: "bench", Payload: bytes.Repeat([]byte{'x'}, size)}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := cl.Echo(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCallParallel runs many callers over the same client.
func BenchmarkCallParallel(b *testing.B) {
	runParallel(b)
}

// BenchmarkConnsPerAddr is how client.DefaultConnsPerAddr was chosen.
func BenchmarkConnsPerAddr(b *testing.B) {
	for _, n := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			runParallel(b, client.WithConnsPerAddr(n))
		})
	}
}

// runParallel has 50 callers per core echo 1 KiB through one client.
func runParallel(b *testing.B, copts ...client.Option) {
	cl, stop := benchServer(b, copts...)
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
}

// BenchmarkCallDeadline is BenchmarkCall with a caller deadline, which
// adds the deadline header and the server's timer.
func BenchmarkCallDeadline(b *testing.B) {
	cl, stop := benchServer(b)
	defer stop()
	req := &echopb.EchoRequest{Message: "bench", Payload: bytes.Repeat([]byte{'x'}, 1024)}
	ctx, cancel := context.WithTimeout(context.Background(), 1<<40)
	defer cancel()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := cl.Echo(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func sizeName(n int) string {
	if n >= 1024 {
		return "1KiB"
	}
	return "16B"
}
