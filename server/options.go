package server

import (
	"log/slog"
	"time"

	"github.com/sluicerpc/sluice/codec"
	"github.com/sluicerpc/sluice/codec/proto"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/internal/transport"
	"github.com/sluicerpc/sluice/observe/metrics"
	"github.com/sluicerpc/sluice/observe/trace"
	"github.com/sluicerpc/sluice/protocol/ttheader"
	"google.golang.org/grpc"
)

// Option configures a Server.
type Option func(*options)

type options struct {
	middlewares  []endpoint.Middleware
	maxFrameSize int
	handOffTick  time.Duration
	logger       *slog.Logger
	codec        codec.Codec
	grpcOptions  []grpc.ServerOption
	reflection   bool
	sniff        transport.SniffTimeouts
	registry     discovery.Registry
	instance     discovery.Instance
	regGrace     time.Duration
	metrics      *metrics.Metrics // WithMetrics; nil: off
	metricsSlot  bool             // WithMetrics has put its slot first in middlewares
	tracing      *trace.Tracing   // WithTracing; nil: off
	adminAddr    string           // WithAdminAddr; "": no admin listener
}

// defaultOptions holds every default in one place.
func defaultOptions() options {
	return options{
		maxFrameSize: ttheader.DefaultMaxFrameSize,
		handOffTick:  transport.DefaultHandOffTick,
		logger:       slog.Default(),
		codec:        proto.Codec,
		reflection:   true,
		regGrace:     500 * time.Millisecond,
		sniff:        transport.SniffTimeouts{First: 10 * time.Second, H2Headers: 10 * time.Second},
	}
}

// WithRegistry announces the server in reg as instance once it is serving,
// and withdraws it first thing in GracefulStop (and Stop), so clients stop
// sending before the drain. instance.Service names the service in the
// registry (required); instance.Addr defaults to the first listener's
// address, which must then be reachable by clients (not 0.0.0.0 or [::]).
func WithRegistry(reg discovery.Registry, instance discovery.Instance) Option {
	return func(o *options) {
		o.registry, o.instance = reg, instance
	}
}

// WithDeregisterGrace sets how long GracefulStop waits after withdrawing
// the registration before it stops accepting, so that clients learn of it
// first (default 500ms when a registry is set).
func WithDeregisterGrace(d time.Duration) Option {
	return func(o *options) {
		if d >= 0 {
			o.regGrace = d
		}
	}
}

// WithGRPCOptions passes options to the grpc-go server that serves gRPC on
// the port (keepalive, limits, credentials for its own use...).
func WithGRPCOptions(opts ...grpc.ServerOption) Option {
	return func(o *options) { o.grpcOptions = append(o.grpcOptions, opts...) }
}

// WithReflection turns server reflection (grpc.reflection.v1 on gRPC, and
// its one-question-per-call form on the native protocol and Connect) on or
// off (default on: `sluice call` and grpcurl use it).
func WithReflection(on bool) Option {
	return func(o *options) { o.reflection = on }
}

// WithSniffTimeout bounds how long a new connection may take to show which
// protocol it speaks (default 10s); an HTTP/2 connection that sends no
// request within the same time is served as gRPC.
func WithSniffTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.sniff = transport.SniffTimeouts{First: d, H2Headers: d}
		}
	}
}

// WithMiddleware appends middlewares to the server chain. The first one
// given is the outermost. Every call, whatever its protocol, runs the chain.
func WithMiddleware(mws ...endpoint.Middleware) Option {
	return func(o *options) { o.middlewares = append(o.middlewares, mws...) }
}

// WithMaxFrameSize bounds an incoming frame, length word included (default
// 4 MiB). A larger frame gets an error logged and its connection closed.
func WithMaxFrameSize(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxFrameSize = n
		}
	}
}

// WithHandOffTick sets how long a handler may run on its connection's reader
// before the connection gets a new reader, so one slow handler cannot stall
// the calls behind it (default 1ms; the hand-off happens after one to two ticks).
func WithHandOffTick(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.handOffTick = d
		}
	}
}

// WithLogger sets the logger for connection and handler failures (default
// slog.Default()). The server logs through log.Handler (observe/log)
// wrapped around l's handler: a line about a call carries its trace_id
// and span_id (or parent_span_id).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}
