package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/examples/echo/echotest"
	"github.com/sluicerpc/sluice/internal/tracingtest"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/observe/trace"
	"github.com/sluicerpc/sluice/server"
	"github.com/sluicerpc/sluice/status"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"
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

// TestPanicLogCarriesTrace: the server's log line about a handler's panic
// carries the call's trace: with tracing on, the trace and the server
// span's ids; without it, the trace id and the caller's span from the
// traceparent the call arrived with.
func TestPanicLogCarriesTrace(t *testing.T) {
	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		parent  = "00f067aa0ba902b7"
		tp      = "00-" + traceID + "-" + parent + "-01"
	)
	for _, traced := range []bool{true, false} {
		var logs bytes.Buffer
		var mu sync.Mutex
		logger := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil))
		opts := []server.Option{server.WithLogger(logger)}
		exp := tracetest.NewInMemoryExporter() // stays empty untraced
		if traced {
			var tr *trace.Tracing
			tr, exp = tracingtest.New(t, trace.SamplerConfig{})
			opts = append(opts, server.WithMiddleware(tr.Server()))
		}
		f := start(t, opts...)
		cl := dial(t, f.addr)
		ctx := metadata.AppendToOutgoing(context.Background(), "traceparent", tp)
		if _, err := cl.Echo(ctx, &echopb.EchoRequest{Message: "panic"}); status.Code(err) != codes.Internal {
			t.Fatalf("traced=%v: %v, want Internal", traced, err)
		}
		mu.Lock()
		var line map[string]any
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "server: panic" {
				line = m
			}
		}
		mu.Unlock()
		if line == nil {
			t.Fatalf("traced=%v: no panic line in %s", traced, logs.String())
		}
		if line["trace_id"] != traceID {
			t.Errorf("traced=%v: trace_id %v, want %s", traced, line["trace_id"], traceID)
		}
		if !traced {
			if line["parent_span_id"] != parent || line["span_id"] != nil {
				t.Errorf("untraced: span_id %v, parent_span_id %v; want none and %s", line["span_id"], line["parent_span_id"], parent)
			}
			continue
		}
		spans := exp.GetSpans()
		if len(spans) != 1 {
			t.Fatalf("exported %d spans, want the server's", len(spans))
		}
		if want := spans[0].SpanContext.SpanID().String(); line["span_id"] != want {
			t.Errorf("traced: span_id %v, want the server span's %s", line["span_id"], want)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestWithTracingPlacement: WithTracing puts the tracing middleware
// before every WithMiddleware one (after the metrics middleware) in any
// order of the options, with room for each call's span; the last
// WithTracing wins, and WithTracing(nil) turns tracing off.
func TestWithTracingPlacement(t *testing.T) {
	tr, exp := tracingtest.New(t, trace.SamplerConfig{Ratio: 1})
	type seen struct {
		span bool
		room any
	}
	var (
		mu  sync.Mutex
		got seen
	)
	look := func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			mu.Lock()
			got = seen{oteltrace.SpanContextFromContext(ctx).IsValid(), callinfo.RoomFromContext(ctx)}
			mu.Unlock()
			return next(ctx, req, resp)
		}
	}
	for _, tc := range []struct {
		name   string
		opts   []server.Option
		traced bool
	}{
		{"tracing last", []server.Option{server.WithMiddleware(look), server.WithMetrics(newMetrics(t)), server.WithTracing(tr)}, true},
		{"tracing first", []server.Option{server.WithTracing(tr), server.WithMiddleware(look), server.WithMetrics(newMetrics(t))}, true},
		{"without metrics", []server.Option{server.WithMiddleware(look), server.WithTracing(tr)}, true},
		{"turned off", []server.Option{server.WithTracing(tr), server.WithMiddleware(look), server.WithTracing(nil)}, false},
		{"by middleware", []server.Option{server.WithMiddleware(tr.Server(), look)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp.Reset()
			addr := echotest.ServeWith(t, func(addr string) echopb.EchoServiceServer { return &echo.Service{ServedBy: addr} }, tc.opts...)
			c, err := client.New(addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := echopb.NewEchoServiceClient(c).Echo(context.Background(), &echopb.EchoRequest{Message: "hi"}); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if got.span != tc.traced {
				t.Errorf("the WithMiddleware middleware saw a span: %v, want %v", got.span, tc.traced)
			}
			_, room := got.room.(*trace.ServerRoom)
			if wantRoom := tc.traced && tc.name != "by middleware"; room != wantRoom {
				t.Errorf("the call has a span room: %v (%T), want %v", room, got.room, wantRoom)
			}
			if n, want := len(exp.GetSpans()), map[bool]int{true: 1, false: 0}[tc.traced]; n != want {
				t.Errorf("%d spans exported, want %d", n, want)
			}
		})
	}
}
