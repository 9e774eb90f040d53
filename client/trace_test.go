package client_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/examples/echo/echotest"
	"github.com/sluicerpc/sluice/internal/tracingtest"
	"github.com/sluicerpc/sluice/observe/trace"
	"github.com/sluicerpc/sluice/policy"
	"github.com/sluicerpc/sluice/server"
	"github.com/sluicerpc/sluice/status"
	oteltrace "go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
)

// TestWithTracing: WithTracing makes one client span per call, outside
// the policy's retries and the WithMiddleware middlewares (which see the
// span), with room for the span in each call.
func TestWithTracing(t *testing.T) {
	tr, exp := tracingtest.New(t, trace.SamplerConfig{Ratio: 1})
	pt, err := policy.NewTable([]policy.TrafficPolicy{{Service: echopb.EchoService_ServiceName, Rules: policy.Rules{Retries: &policy.Retries{MaxAttempts: 3}}}})
	if err != nil {
		t.Fatal(err)
	}
	var sawSpan, sawRoom bool
	look := func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			sawSpan = oteltrace.SpanContextFromContext(ctx).IsValid()
			_, sawRoom = callinfo.RoomFromContext(ctx).(*trace.ClientRoom)
			return next(ctx, req, resp)
		}
	}
	// The instance always fails: each call makes three attempts.
	var attempts atomic.Int32
	fail := func(endpoint.Endpoint) endpoint.Endpoint {
		return func(context.Context, any, any) error {
			attempts.Add(1)
			return status.Err(codes.Unavailable, "test: failing as asked")
		}
	}
	addr := echotest.ServeWith(t, func(addr string) echopb.EchoServiceServer { return &echo.Service{ServedBy: addr} }, server.WithMiddleware(fail))
	c, err := client.New(addr, client.WithMiddleware(look), client.WithTracing(tr), client.WithPolicy(pt))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const calls = 5
	for range calls {
		if _, err := echopb.NewEchoServiceClient(c).Echo(context.Background(), &echopb.EchoRequest{Message: "x"}); err == nil {
			t.Fatal("a call to failing instances succeeded")
		}
	}
	if n := attempts.Load(); n != 3*calls {
		t.Fatalf("%d attempts reached the server, want %d", n, 3*calls)
	}
	if !sawSpan || !sawRoom {
		t.Errorf("the WithMiddleware middleware saw a span: %v, a room: %v; want both", sawSpan, sawRoom)
	}
	var clientSpans int
	for _, s := range exp.GetSpans() {
		if s.SpanKind == oteltrace.SpanKindClient {
			clientSpans++
		}
	}
	if clientSpans != calls {
		t.Errorf("%d client spans for %d calls of 3 attempts each, want one per call", clientSpans, calls)
	}
}
