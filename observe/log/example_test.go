package log_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/sluicerpc/sluice/callinfo"
	obslog "github.com/sluicerpc/sluice/observe/log"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// Every record logged with a context that holds a span carries its ids.
func ExampleHandler() {
	logger := slog.New(obslog.Handler(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: noTime})))
	ctx := oteltrace.ContextWithSpanContext(context.Background(), oteltrace.NewSpanContext(oteltrace.SpanContextConfig{
		TraceID: oteltrace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:  oteltrace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	}))
	logger.InfoContext(ctx, "order placed", "order", 42)
	logger.Info("no context, no ids")
	// Output:
	// {"level":"INFO","msg":"order placed","order":42,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"}
	// {"level":"INFO","msg":"no context, no ids"}
}

// The access log writes one line per call. A server installs it after its
// tracing middleware, so that the line carries the server span's ids:
//
//	server.New(server.WithMiddleware(tr.Server(), obslog.AccessLog(logger)))
func ExampleAccessLog() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: noTime}))
	handler := func(ctx context.Context, req, resp any) error { return nil }
	ep := obslog.AccessLog(logger)(handler)

	// What the server does for each call.
	ctx := &callinfo.Carrier{Context: context.Background(), Info: callinfo.Info{
		Side: callinfo.Server, Service: "shop.v1.Orders", Method: "Place", Protocol: "grpc", Peer: "10.0.0.7:52114", Attempt: 1,
	}}
	ep(ctx, nil, nil)
	// Output:
	// {"level":"INFO","msg":"access","side":"server","service":"shop.v1.Orders","method":"Place","code":"OK","protocol":"grpc","peer":"10.0.0.7:52114"}
}

// noTime drops the fields that change from run to run.
func noTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == "duration") {
		return slog.Attr{}
	}
	return a
}
