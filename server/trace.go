package server

import "github.com/sluicerpc/sluice/observe/trace"

// WithTraceContextRequired turns on trace-context enforcement (default
// off): a call that carries no valid W3C traceparent is rejected with
// InvalidArgument, saying whether it was missing or how it was malformed.
// It is trace.RequireContext in the chain where the option is given; give
// it after the tracing middleware, so that rejected calls still get a span.
func WithTraceContextRequired() Option {
	return WithMiddleware(trace.RequireContext())
}
