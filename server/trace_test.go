package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/examples/echo/echotest"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/server"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// TestTraceContextRequired: with enforcement on, a call without a
// traceparent is rejected with InvalidArgument; one with a valid
// traceparent goes through; without the option both go through.
func TestTraceContextRequired(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, required := range []bool{true, false} {
		var opts []server.Option
		if required {
			opts = append(opts, server.WithTraceContextRequired())
		}
		addr := echotest.ServeWith(t, func(addr string) echopb.EchoServiceServer { return &echo.Service{ServedBy: addr} }, opts...)
		c, err := client.New(addr)
		if err != nil {
			t.Fatal(err)
		}
		cl := echopb.NewEchoServiceClient(c)
		_, err = cl.Echo(context.Background(), &echopb.EchoRequest{Message: "x"})
		if required && (status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "traceparent")) {
			t.Errorf("required, no traceparent: %v, want InvalidArgument naming traceparent", err)
		}
		if !required && err != nil {
			t.Errorf("not required, no traceparent: %v", err)
		}
		ctx := metadata.AppendToOutgoing(context.Background(), "traceparent", tp)
		if _, err := cl.Echo(ctx, &echopb.EchoRequest{Message: "x"}); err != nil {
			t.Errorf("required=%v, valid traceparent: %v", required, err)
		}
		c.Close()
	}
}
