package server

import (
	"slices"

	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/observe/trace"
)

// WithTracing traces every call with t: t.Server() runs in the chain
// right after the metrics middleware (WithMetrics) and before any
// WithMiddleware or WithPolicy middleware, wherever the options are
// given, and the server makes each call with room for its span and its
// incoming trace context (trace.ServerRoom), so that a call the sampler
// drops costs no allocation of its own. Installing t.Server() with
// WithMiddleware traces the same, an allocation or two dearer per call.
// Given more than once, the last t wins; WithTracing(nil) turns tracing
// off. Default off.
func WithTracing(t *trace.Tracing) Option {
	return func(o *options) {
		if o.tracing == nil && t != nil {
			// One chain slot, as WithMetrics has: o is final by the
			// time a service registers.
			mw := func(next endpoint.Endpoint) endpoint.Endpoint {
				if o.tracing == nil {
					return next
				}
				return o.tracing.Server()(next)
			}
			at := 0
			if o.metricsSlot {
				at = 1
			}
			o.middlewares = slices.Insert(o.middlewares, at, endpoint.Middleware(mw))
		}
		o.tracing = t
	}
}

// WithTraceContextRequired turns on trace-context enforcement (default
// off): a call that carries no valid W3C traceparent is rejected with
// InvalidArgument, saying whether it was missing or how it was malformed.
// It is trace.RequireContext in the chain where the option is given; give
// it after the tracing middleware, so that rejected calls still get a span.
func WithTraceContextRequired() Option {
	return WithMiddleware(trace.RequireContext())
}
