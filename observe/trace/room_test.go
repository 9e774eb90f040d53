package trace_test

import (
	"context"
	"testing"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/observe/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// dropAll returns a Tracing on a *Provider that samples nothing: every
// span takes the common path, dropped by the sampler.
func dropAll(t *testing.T) *trace.Tracing {
	t.Helper()
	tp, err := trace.NewProvider(trace.ProviderConfig{Sampler: trace.SamplerConfig{Ratio: -1}})
	return newTracing(t, tp, err, trace.Config{TracerProvider: tp})
}

const parentTP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00" // not sampled

// TestRoomsAllocateNothing: a call whose carrier has room for its span
// (as server.WithTracing and client.WithTracing make them) is traced
// without an allocation when the sampler drops its span; without room,
// the span and its context take one.
func TestRoomsAllocateNothing(t *testing.T) {
	tr := dropAll(t)
	const runs = 100
	ok := func(context.Context, any, any) error { return nil }
	var sent string
	cli := tr.Client()(func(ctx context.Context, _, _ any) error {
		sent = callinfo.FromContext(ctx).Trace.Traceparent
		return nil
	})
	for _, side := range []struct {
		name string
		ep   endpoint.Endpoint
		call func(room bool) context.Context // a fresh call record
	}{
		{"server", tr.Server()(ok), func(room bool) context.Context {
			c := &tracedServerCall{}
			c.c.Info = callinfo.Info{Side: callinfo.Server, Service: echoService, Method: "Echo", Attempt: 1}
			c.c.Context = metadata.NewIncomingContextIn(&c.in, context.Background(), nil, parentTP, "")
			if room {
				c.c.Room = &c.span
			}
			return &c.c
		}},
		{"client", cli, func(room bool) context.Context {
			c := &tracedClientCall{}
			c.c.Context = context.Background()
			c.c.Info = callinfo.Info{Side: callinfo.Client, Service: echoService, Method: "Echo", FullMethod: "/" + echoName, Attempt: 1}
			if room {
				c.c.Room = &c.span
			}
			return &c.c
		}},
	} {
		for _, room := range []bool{true, false} {
			calls := make([]context.Context, runs+1) // AllocsPerRun calls once more
			for i := range calls {
				calls[i] = side.call(room)
			}
			n := 0
			allocs := testing.AllocsPerRun(runs, func() {
				n++
				if err := side.ep(calls[n-1], nil, nil); err != nil {
					t.Fatal(err)
				}
			})
			if want := map[bool]float64{true: 0, false: 1}[room]; allocs != want {
				t.Errorf("%s call, room %v: %v allocations, want %v", side.name, room, allocs, want)
			}
		}
	}
	if len(sent) != len(parentTP) {
		t.Errorf("the client sent the traceparent %q", sent)
	}
}

// TestRoomTakenOnce: a second tracing middleware on the same call (a
// user's, say, besides server.WithTracing's) finds the room taken and
// makes its span elsewhere: the first span stays as it was.
func TestRoomTakenOnce(t *testing.T) {
	outer, inner := dropAll(t), dropAll(t)
	var (
		outerCtx          context.Context
		outerSC, innerSC  oteltrace.SpanContext
		innerSCFromHandle oteltrace.SpanContext
	)
	handler := func(ctx context.Context, _, _ any) error {
		innerSCFromHandle = oteltrace.SpanContextFromContext(ctx)
		return nil
	}
	between := func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			outerCtx, outerSC = ctx, oteltrace.SpanContextFromContext(ctx)
			return next(ctx, req, resp)
		}
	}
	srv := endpoint.Chain(outer.Server(), between, inner.Server())(handler)
	var c tracedServerCall
	c.c.Info = callinfo.Info{Side: callinfo.Server, Service: echoService, Method: "Echo", Attempt: 1}
	c.c.Context = metadata.NewIncomingContextIn(&c.in, context.Background(), nil, parentTP, "")
	c.c.Room = &c.span
	if err := srv(&c.c, nil, nil); err != nil {
		t.Fatal(err)
	}
	innerSC = innerSCFromHandle
	if !outerSC.IsValid() || !innerSC.IsValid() || outerSC.SpanID() == innerSC.SpanID() {
		t.Fatalf("outer span %v, inner span %v: want two valid spans", outerSC, innerSC)
	}
	if got := oteltrace.SpanContextFromContext(outerCtx); !got.Equal(outerSC) {
		t.Errorf("the outer span's context changed after the inner middleware ran: %v, was %v", got, outerSC)
	}
	if outerSC.TraceID() != innerSC.TraceID() || outerSC.TraceID().String() != parentTP[3:35] {
		t.Errorf("trace ids %v and %v, want the caller's %s", outerSC.TraceID(), innerSC.TraceID(), parentTP[3:35])
	}
}
