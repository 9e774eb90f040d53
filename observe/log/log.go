// Package log is Sluice's log/slog glue: an access-log middleware that
// writes one record per call, and a handler wrapper that puts the trace
// and span ids of the call on every record logged with its context.
//
//	logger := slog.New(log.Handler(slog.NewJSONHandler(os.Stderr, nil)))
//	s := server.New(
//		server.WithLogger(logger),
//		server.WithTracing(tr), // first in the chain
//		server.WithMiddleware(log.AccessLog(logger)),
//	)
//
// The access log is off unless its middleware is installed. With a JSON
// handler each call is one line:
//
//	{"time":"...","level":"INFO","msg":"access","side":"server","service":"pkg.Svc","method":"Get",
//	 "code":"OK","duration":1234567,"protocol":"ttheader","peer":"10.0.0.7:52114",
//	 "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"}
//
// duration is in nanoseconds, slog's JSON form of a time.Duration. The
// trace fields come from the span in the call's context: install
// AccessLog after (inside) the tracing middleware so that it sees the span.
package log

import (
	"context"
	"log/slog"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/status"
	"go.opentelemetry.io/otel/propagation"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// Keys of the fields this package writes.
const (
	TraceIDKey = "trace_id"
	SpanIDKey  = "span_id"
	// ParentSpanIDKey is the caller's span, written instead of span_id
	// when a server call's context holds no span of its own (see Handler).
	ParentSpanIDKey = "parent_span_id"
)

// AccessMessage is the message of access-log records.
const AccessMessage = "access"

// AccessLog returns a middleware, for clients and servers alike, that
// logs every call on l at level Info once it ends: side, service, method,
// code (the gRPC code name), duration, protocol, and when known peer,
// caller, attempt (above 1), error (the status message of a failed call),
// trace_id and span_id. A nil l logs nothing.
func AccessLog(l *slog.Logger) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		if l == nil {
			return next
		}
		return func(ctx context.Context, req, resp any) error {
			info := callinfo.FromContext(ctx)
			if info == nil || !l.Enabled(ctx, slog.LevelInfo) {
				return next(ctx, req, resp)
			}
			start := time.Now()
			err := next(ctx, req, resp)
			logCall(ctx, l, info, time.Since(start), err)
			return err
		}
	}
}

func logCall(ctx context.Context, l *slog.Logger, info *callinfo.Info, d time.Duration, err error) {
	var buf [12]slog.Attr
	a := append(buf[:0],
		slog.String("side", info.Side.String()),
		slog.String("service", info.Service),
		slog.String("method", info.Method),
		slog.String("code", status.Code(err).String()),
		slog.Duration("duration", d),
		slog.String("protocol", info.Protocol),
	)
	if info.Peer != "" {
		a = append(a, slog.String("peer", info.Peer))
	}
	if info.Caller != "" {
		a = append(a, slog.String("caller", info.Caller))
	}
	if info.Attempt > 1 {
		a = append(a, slog.Int("attempt", info.Attempt))
	}
	if err != nil {
		a = append(a, slog.String("error", status.Convert(err).Message()))
	}
	a = appendTrace(ctx, a)
	l.LogAttrs(ctx, slog.LevelInfo, AccessMessage, a...)
}

// Handler wraps h so that every record logged with a context that holds a
// valid span (slog's *Context methods, LogAttrs) carries trace_id and
// span_id, unless it already has a trace_id. A server call's context
// outside its span (before the tracing middleware, after it returned, or
// with no tracing at all) gives the trace_id of the W3C traceparent the
// call arrived with, and the caller's span as parent_span_id. Records
// logged in a group opened with WithGroup get the fields as h places any
// other record attribute.
//
// The server wraps its logger (server.WithLogger) in Handler, so its own
// call-scoped lines (a handler panic, a reply that cannot be encoded)
// carry the call's trace.
func Handler(h slog.Handler) slog.Handler {
	if t, ok := h.(*traceHandler); ok {
		return t
	}
	return &traceHandler{h: h}
}

type traceHandler struct {
	h slog.Handler
}

func (t *traceHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return t.h.Enabled(ctx, level)
}

func (t *traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx == nil || hasTraceID(r) {
		return t.h.Handle(ctx, r)
	}
	var buf [2]slog.Attr
	if a := appendTrace(ctx, buf[:0]); len(a) > 0 {
		r = r.Clone()
		r.AddAttrs(a...)
	}
	return t.h.Handle(ctx, r)
}

// appendTrace appends to a the trace fields of ctx: trace_id and span_id
// of its span; without one, trace_id and parent_span_id of the W3C
// traceparent a server call arrived with.
func appendTrace(ctx context.Context, a []slog.Attr) []slog.Attr {
	if sc := oteltrace.SpanContextFromContext(ctx); sc.IsValid() {
		return append(a, slog.String(TraceIDKey, sc.TraceID().String()), slog.String(SpanIDKey, sc.SpanID().String()))
	}
	tp, ts := metadata.IncomingTraceContext(ctx)
	if tp == "" {
		return a
	}
	carrier := propagation.MapCarrier{metadata.KeyTraceparent: tp, metadata.KeyTracestate: ts}
	sc := oteltrace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
	if !sc.IsValid() {
		return a
	}
	return append(a, slog.String(TraceIDKey, sc.TraceID().String()), slog.String(ParentSpanIDKey, sc.SpanID().String()))
}

func hasTraceID(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == TraceIDKey
		return !found
	})
	return found
}

func (t *traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &traceHandler{h: t.h.WithAttrs(attrs)}
}

func (t *traceHandler) WithGroup(name string) slog.Handler {
	return &traceHandler{h: t.h.WithGroup(name)}
}
