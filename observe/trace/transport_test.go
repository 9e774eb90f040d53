package trace_test

import (
	"context"
	"testing"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/examples/echo/echotest"
	"github.com/sluicerpc/sluice/internal/propagationtest"
	"github.com/sluicerpc/sluice/metadata"
)

// TestTransportsSendCallTrace: the trace context a client middleware puts
// in the call info (callinfo.Info.Trace), as Tracing.Client does, arrives
// over each protocol as ordinary metadata, after the rest and in place of
// a trace context the outgoing metadata had (a proxy forwarding its
// caller's, in any case); without it, the outgoing metadata's arrives.
func TestTransportsSendCallTrace(t *testing.T) {
	const (
		tp    = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		ts    = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
		stale = "00-11111111111111111111111111111111-2222222222222222-01"
	)
	for _, p := range []client.Protocol{client.Native, client.GRPC, client.Connect} {
		for _, tc := range []struct {
			name   string
			trace  *callinfo.TraceContext
			md     metadata.MD // outgoing metadata
			tp, ts string      // what must arrive; "" for nothing
		}{
			{"info only", &callinfo.TraceContext{Traceparent: tp, Tracestate: ts}, nil, tp, ts},
			{"replaces outgoing", &callinfo.TraceContext{Traceparent: tp},
				metadata.MD{"traceparent": {stale}, "tracestate": {"stale=1"}}, tp, ""},
			{"replaces outgoing in any case", &callinfo.TraceContext{Traceparent: tp, Tracestate: ts},
				metadata.MD{"TraceParent": {stale}, "TRACESTATE": {"stale=1"}}, tp, ts},
			{"outgoing only", nil, metadata.MD{"traceparent": {stale}, "tracestate": {"stale=1"}}, stale, "stale=1"},
			{"no traceparent: nothing", &callinfo.TraceContext{Tracestate: ts}, nil, "", ""},
		} {
			t.Run(p.String()+"/"+tc.name, func(t *testing.T) {
				if p == client.GRPC && tc.name == "replaces outgoing in any case" {
					t.Skip("gRPC metadata keys are lower case")
				}
				h := &propagationtest.Hop{}
				addr := echotest.Serve(t, func(string) echopb.EchoServiceServer { return h })
				setTrace := func(next endpoint.Endpoint) endpoint.Endpoint {
					return func(ctx context.Context, req, resp any) error {
						callinfo.FromContext(ctx).Trace = tc.trace
						return next(ctx, req, resp)
					}
				}
				c, err := client.New(addr, client.WithProtocol(p), client.WithMiddleware(setTrace))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				md := metadata.Join(tc.md, metadata.Pairs("x-transient", "t"))
				ctx := metadata.NewOutgoingContext(context.Background(), md)
				if _, err := echopb.NewEchoServiceClient(c).Echo(ctx, &echopb.EchoRequest{Message: "x"}); err != nil {
					t.Fatal(err)
				}
				in := h.Seen()[0].Incoming
				for k, want := range map[string]string{"traceparent": tc.tp, "tracestate": tc.ts, "x-transient": "t"} {
					got := in.Get(k)
					if want == "" && got != nil || want != "" && (len(got) != 1 || got[0] != want) {
						t.Errorf("%s arrived as %q, want %q (all: %v)", k, got, want, in)
					}
				}
			})
		}
	}
}
