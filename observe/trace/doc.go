// Package trace is Sluice's OpenTelemetry tracing: a span per client call
// and per server call, W3C Trace Context carried in the request metadata
// of every protocol, a sampler with per-method rules and error capture,
// and trace-context enforcement.
//
//	tp, err := trace.NewProvider(trace.ProviderConfig{Exporter: exp}) // 1% of new traces, failures always
//	if err != nil { ... }
//	defer tp.Shutdown(ctx)
//	tr, err := trace.New(trace.Config{TracerProvider: tp})
//	if err != nil { ... }
//	s := server.New(server.WithTracing(tr))
//	c, err := client.New(addr, client.WithTracing(tr))
//
// server.WithTracing and client.WithTracing install the middlewares
// (Tracing.Server, Tracing.Client) first in the chain, after metrics, and
// make each call with room for its span (ServerRoom, ClientRoom), so that
// a call whose span the sampler drops, the common case, costs the tracing
// no allocation. The middlewares also work on their own, with
// WithMiddleware, wherever they are put; the span and its context then
// take an allocation per call.
//
// # Spans
//
// Spans are named "pkg.Service/Method", of kind client or server, in the
// instrumentation scope ScopeName. The server span continues the trace
// the caller's traceparent names; the client span is a child of the span
// in the caller's context. Attributes follow the OpenTelemetry RPC
// semantic conventions (Config.Attributes picks the classic set, the
// current one or both):
//
//   - rpc.system: "grpc" for gRPC, "connect_rpc" for Connect, and "kitex"
//     for the native protocol. The native protocol is Kitex's TTHeader
//     framing with KitexProtobuf payloads, and rpc.system names a protocol
//     family rather than an implementation ("grpc" whoever implements
//     gRPC), so a call between a Sluice client and a Kitex server, traced
//     on the Kitex side by kitex-contrib/obs-opentelemetry, reports one
//     system. Config.NativeSystem changes it ("sluice", say).
//   - rpc.service, rpc.method; rpc.grpc.status_code on every protocol
//     (Sluice's error model is gRPC's everywhere), and
//     rpc.connect_rpc.error_code on Connect failures.
//   - server.address and server.port on client spans (the instance the
//     balancer picked), network.peer.address and network.peer.port on
//     server spans.
//
// A client span's status is Error, with the status message, when the call
// fails with any code; a server span's only for the codes that say the
// server failed (Unknown, DeadlineExceeded, Unimplemented, Internal,
// Unavailable, DataLoss), as the gRPC conventions say: a NotFound is the
// caller's problem, not the server's.
//
// # Propagation
//
// Every call carries its client span's W3C traceparent (and tracestate,
// when there is one), sampled or not. The client middleware hands them to
// the transport in the call info (callinfo.Info.Trace), which sends them
// after the call's outgoing metadata, in place of any trace context there
// (a proxy that forwards its incoming metadata has its caller's); on the
// server they are ordinary incoming metadata, which the server middleware
// reads with metadata.IncomingTraceContext (both values in one look-up).
// With a Config.Propagator other than TraceContext, the propagator writes
// the outgoing metadata instead.
//
// # Sampling
//
// Sampler decides: a span follows its parent (sampled or not, local or
// remote, so a trace is kept or dropped as a whole); a new trace is
// sampled with probability SamplerConfig.Ratio (default 1%), on its trace
// id as every OpenTelemetry SDK decides; a method in SamplerConfig.Always
// is sampled every time. The decision travels in the traceparent flags,
// so the server of an unsampled call does not sample it either.
//
// # Error capture
//
// A failed call is exported even when the sampler dropped it. The design
// keeps the common path, a call the sampler drops and that succeeds, as
// cheap as a dropped span can be:
//
//  1. The sampler drops an unsampled span outright (it never returns
//     RecordOnly), and the span costs only its ids in the context. With a
//     *Provider the Tracing asks the sampler itself first and never enters
//     the SDK for such a span.
//  2. When the call fails, the middleware replays the span: it starts it
//     again, through the SDK, with the original start time and, through a
//     parent context the sampler and IDGenerator recognise, with the same
//     trace and span ids and a sampled decision. The server spans of the
//     services it called, which got those ids in their traceparent, so
//     point at it; the span is marked with ErrorCaptureKey.
//  3. Both sides capture their own failures, so a failed call is usually
//     exported on the client and on the server, linked as a sampled call
//     would be. The traceparent flags the callee saw stay "not sampled":
//     children follow their parent's original decision, and only failing
//     spans are upgraded.
//
// What capture cannot restore: events, attributes and child spans that
// code inside the call added to the unsampled span (they were never
// recorded), and the spans of calls that succeeded under a failing one.
// The usual alternative, RecordOnly for every unsampled span plus a span
// processor that exports the failed ones, keeps those, but records every
// call. BenchmarkMiddleware measures both (client and server middlewares
// of one call, in process, on the project's 2-core VM): a dropped call
// costs 3 allocations (about 270 bytes, the server's incoming trace
// context included) and about 0.5 µs here, 13 and about 4.5 µs recorded
// only, 15 and about 5 µs sampled. Capture costs its
// replayed spans when a call fails (about the cost of a sampled failing
// call), at most Config.ErrorCaptureRate of them a second (default 100),
// so that an outage does not become a tracing storm.
//
// Error capture needs the provider's sampler to be Sampler and its ID
// generator IDGenerator: NewProvider sets both. With another provider the
// replayed span is whatever that provider's sampler decides.
//
// # Trace-context enforcement
//
// RequireContext is a server middleware that rejects calls without a
// valid traceparent with InvalidArgument, saying what was wrong. It is off
// unless installed.
package trace
