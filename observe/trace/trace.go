package trace

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/status"
	"go.opentelemetry.io/otel"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/codes"
)

// ScopeName is the instrumentation scope of Sluice's spans.
const ScopeName = "github.com/sluicerpc/sluice/observe/trace"

// Config configures a Tracing. The zero value traces through the global
// TracerProvider with W3C Trace Context and the classic attribute set.
type Config struct {
	// TracerProvider makes the spans (default otel.GetTracerProvider()).
	// Give the *Provider NewProvider returns for Sluice's sampling with
	// error capture and for the fast path, where a call the sampler drops
	// costs no SDK span; any other provider (the global one included, even
	// when it delegates to a *Provider) goes through the SDK on every call.
	TracerProvider oteltrace.TracerProvider
	// Propagator carries the trace context in request metadata (default
	// propagation.TraceContext{}: traceparent and tracestate, encoded and
	// decoded by Sluice without the propagator's allocations). A composite
	// propagator (with baggage, say) takes the generic path.
	Propagator propagation.TextMapPropagator
	// Attributes selects the semantic-convention attribute set (default
	// AttributesClassic).
	Attributes Attributes
	// NativeSystem is rpc.system for calls on the native protocol (default
	// "kitex": the native protocol is Kitex's TTHeader with KitexProtobuf
	// payloads, and rpc.system names the protocol family as "grpc" does for
	// every gRPC implementation, so a Kitex peer traced by
	// kitex-contrib/obs-opentelemetry reports the same system).
	NativeSystem string
	// DisableErrorCapture turns error capture off (default false: a call
	// that fails is exported even when its span was not sampled, provided
	// the provider samples with Sampler; see the package doc).
	DisableErrorCapture bool
	// ErrorCaptureRate bounds the spans error capture exports, per second
	// and per Tracing, so that an outage, when every call fails, does not
	// turn into a tracing storm (default DefaultErrorCaptureRate; negative:
	// no bound). Sampled spans do not count.
	ErrorCaptureRate int
}

// DefaultErrorCaptureRate is the default Config.ErrorCaptureRate.
const DefaultErrorCaptureRate = 100

// Attributes names a set of OpenTelemetry RPC semantic-convention attributes.
type Attributes uint8

const (
	// AttributesClassic is the set most backends and dashboards know
	// (semantic conventions up to v1.37, otelgrpc's OTEL_SEMCONV_STABILITY_OPT_IN=rpc/old):
	// rpc.system ("kitex", "grpc", "connect_rpc"), rpc.service, rpc.method
	// (the method's short name), rpc.grpc.status_code (the numeric code, on
	// every protocol: Sluice's error model is gRPC's everywhere) and, on
	// Connect failures, rpc.connect_rpc.error_code.
	AttributesClassic Attributes = iota
	// AttributesCurrent is the set of semantic conventions v1.40 and later
	// (otelgrpc's default): rpc.system.name ("kitex", "grpc",
	// "connectrpc"), rpc.method ("pkg.Service/Method"),
	// rpc.response.status_code ("UNAVAILABLE") and, on failure, error.type.
	AttributesCurrent
	// AttributesBoth sets both (otelgrpc's rpc/dup); rpc.method is the
	// current, fully-qualified name.
	AttributesBoth
)

// Tracing makes a span per client call and per server call. Make one with
// New and install its middlewares with client.WithMiddleware and
// server.WithMiddleware. It is safe for concurrent use.
type Tracing struct {
	tp         oteltrace.TracerProvider
	tracer     oteltrace.Tracer
	sampler    *sampler                      // non-nil when tp is a *Provider: the fast path
	prop       propagation.TextMapPropagator // nil: the built-in W3C Trace Context
	attrs      Attributes
	native     string
	capture    bool
	clientOpts []oteltrace.SpanStartOption
	serverOpts []oteltrace.SpanStartOption
	names      names
	limit      captureLimit
	base       spanBase // what the fast path's unsampled spans share
}

// New returns a Tracing configured by cfg.
func New(cfg Config) (*Tracing, error) {
	if cfg.Attributes > AttributesBoth {
		return nil, fmt.Errorf("trace: Attributes %d: want AttributesClassic, AttributesCurrent or AttributesBoth", cfg.Attributes)
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	t := &Tracing{
		tp:         tp,
		tracer:     tp.Tracer(ScopeName),
		attrs:      cfg.Attributes,
		native:     cfg.NativeSystem,
		capture:    !cfg.DisableErrorCapture,
		limit:      captureLimit{perSecond: int64(cfg.ErrorCaptureRate), clock: time.Now},
		clientOpts: []oteltrace.SpanStartOption{oteltrace.WithSpanKind(oteltrace.SpanKindClient)},
		serverOpts: []oteltrace.SpanStartOption{oteltrace.WithSpanKind(oteltrace.SpanKindServer)},
	}
	t.base.tp = tp
	if p, ok := tp.(*Provider); ok && p != nil {
		t.sampler = p.sampler
	}
	if t.native == "" {
		t.native = "kitex"
	}
	if cfg.ErrorCaptureRate == 0 {
		t.limit.perSecond = DefaultErrorCaptureRate
	}
	if _, w3c := cfg.Propagator.(propagation.TraceContext); cfg.Propagator != nil && !w3c {
		t.prop = cfg.Propagator
	}
	return t, nil
}

// Client returns the client middleware: a span of kind client per call
// (per attempt when installed inside a retry middleware), whose context
// goes to the server in the request metadata.
func (t *Tracing) Client() endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) (err error) {
			var c call
			sctx := t.beginClient(&c, ctx)
			if sctx == nil {
				return next(ctx, req, resp)
			}
			defer t.finish(&c, &err) // on a panic too
			err = next(sctx, req, resp)
			c.returned = true
			return err
		}
	}
}

// Server returns the server middleware: it continues the trace the
// request metadata carries, or starts one, with a span of kind server.
// Put it before the middlewares that read the span (the access log), so
// that they and the handler see it.
func (t *Tracing) Server() endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		// A server builds one chain per method: its span name is the
		// first call's. (Other methods look theirs up.)
		var first atomic.Pointer[namedMethod]
		return func(ctx context.Context, req, resp any) (err error) {
			var c call
			sctx := t.beginServer(&c, ctx, &first)
			if sctx == nil {
				return next(ctx, req, resp)
			}
			defer t.finish(&c, &err) // on a panic too
			err = next(sctx, req, resp)
			c.returned = true
			return err
		}
	}
}

// call is a traced call in progress: what its middleware keeps, on its
// stack, across the call. The middlewares' own frames stay small on
// purpose: while a call waits for its reply, its goroutine's stack holds
// them, and the garbage collector decodes every frame of every waiting
// stack on each cycle, at a cost that grows with the function's size.
type call struct {
	kind      oteltrace.SpanKind
	info      *callinfo.Info
	start     time.Time
	span      oteltrace.Span
	recording bool // span's, asked as it started, while in the cache
	// parent is the context span was started in (on the server, without
	// the caller's span context, which extract finds there again): where
	// an error-capture span starts too.
	parent context.Context
	// prev is the call info's trace context before the client span's,
	// put back when the call returns.
	prev     *callinfo.TraceContext
	returned bool // false in finish: a panic or Goexit went through
}

// beginClient starts the client span of the call of ctx, records it in
// c and returns the context for the rest of the chain; nil when ctx has
// no call info (the call then goes on untraced).
func (t *Tracing) beginClient(c *call, ctx context.Context) context.Context {
	info := callinfo.FromContext(ctx)
	if info == nil {
		return nil
	}
	start := info.Start
	if info.Attempt > 1 || start.IsZero() {
		start = now()
	}
	name := t.spanName(info)
	// Field by field: c is on the caller's stack, and a composite
	// literal would be built aside and copied with write barriers.
	c.kind, c.info, c.start, c.parent, c.prev = oteltrace.SpanKindClient, info, start, ctx, info.Trace
	if t.sampler == nil {
		return t.startClient(c, ctx, info, name, nil, nil, false)
	}
	parent := oteltrace.SpanContextFromContext(ctx)
	var ids spanIDs
	sampled := t.sampler.draw(&ids, parentIDs(&parent), name)
	if sampled || spanKey == nil {
		return t.startClient(c, ctx, info, name, &parent, &ids, sampled)
	}
	// The common case, a span the sampler drops: it, its context and the
	// traceparent the transports send (see callinfo.Info.Trace) in one
	// allocation (the call's own, when it has room), the ids only in the
	// traceparent.
	s := clientRoom(ctx).take()
	s.Context, s.span.spanBase = ctx, &t.base
	putTraceparent(&s.span.traceparent, &ids)
	// The bytes do not change again: the string may share them.
	s.span.trace.Traceparent = unsafe.String(&s.span.traceparent[0], len(s.span.traceparent))
	if ts := parent.TraceState(); ts.Len() > 0 {
		s.span.trace.Tracestate = ts.String()
	}
	info.Trace = &s.span.trace
	c.span = &s.span
	return s
}

// startClient is beginClient for the spans of the general path: those
// the sampler decided on (ids, drawn under parent) and did not drop, or
// any span when the provider is not a *Provider (ids nil). Kept apart,
// so that the common path has the small stack frame.
func (t *Tracing) startClient(c *call, ctx context.Context, info *callinfo.Info, name string, parent *oteltrace.SpanContext, ids *spanIDs, sampled bool) context.Context {
	var (
		sctx context.Context
		span oteltrace.Span
	)
	if ids != nil {
		sctx, span = t.started(ctx, *parent, name, t.clientOpts, ids.spanContext(parent.TraceState()), sampled)
	} else {
		sctx, span = t.tracer.Start(ctx, name, t.clientOpts...)
	}
	c.span, c.recording = span, span.IsRecording()
	// The transports send the trace context in the call info
	// (callinfo.Info.Trace); finish puts the earlier one back.
	if sc := span.SpanContext(); sc.IsValid() {
		sctx = t.inject(sctx, info, sc)
	}
	return sctx
}

// beginServer starts the server span of the call of ctx, continuing the
// trace its metadata carries, records it in c and returns the context
// for the rest of the chain; nil when ctx has no call info. first caches
// the span name of the chain's method.
func (t *Tracing) beginServer(c *call, ctx context.Context, first *atomic.Pointer[namedMethod]) context.Context {
	info := callinfo.FromContext(ctx)
	if info == nil {
		return nil
	}
	start := info.Start
	if start.IsZero() {
		start = now()
	}
	var name string
	if n := first.Load(); n != nil && n.service == info.Service && n.method == info.Method {
		name = n.name
	} else {
		name = t.spanName(info)
		first.CompareAndSwap(nil, &namedMethod{methodKey{info.Service, info.Method}, name})
	}
	c.kind, c.info, c.start, c.parent = oteltrace.SpanKindServer, info, start, ctx
	if t.sampler == nil || t.prop != nil {
		return t.startServer(c, ctx, name)
	}
	// The built-in W3C propagator: the caller's span context in parts,
	// not in a context (which saves one on the common path; extract finds
	// it again for error capture).
	var p remoteParent
	p.read(ctx)
	var ids spanIDs
	sampled := t.sampler.draw(&ids, p.ids(), name)
	if sampled || spanKey == nil {
		return t.startServerUnder(c, ctx, name, &p, &ids, sampled)
	}
	// The common case, a span the sampler drops: it and its context in
	// one allocation (the call's own, when it has room).
	s := serverRoom(ctx).take()
	s.Context, s.span.spanBase, s.span.ts, s.span.ids = ctx, &t.base, p.ts, ids
	c.span = &s.span
	return s
}

// startServer is beginServer when the fast path does not apply: a
// provider other than a *Provider, or a propagator other than the
// built-in one.
func (t *Tracing) startServer(c *call, ctx context.Context, name string) context.Context {
	base, remote := t.extract(ctx)
	c.parent = base
	var (
		sctx context.Context
		span oteltrace.Span
	)
	if t.sampler != nil {
		sc, sampled := t.sampler.decide(remote, name)
		sctx, span = t.started(base, remote, name, t.serverOpts, sc, sampled)
	} else {
		sctx, span = t.tracer.Start(t.withRemote(base, remote), name, t.serverOpts...)
	}
	c.span, c.recording = span, span.IsRecording()
	return sctx
}

// startServerUnder is beginServer for the spans of the fast path that it
// does not make itself: those the sampler sampled (ids, drawn under p),
// or dropped when spanKey is unknown.
func (t *Tracing) startServerUnder(c *call, ctx context.Context, name string, p *remoteParent, ids *spanIDs, sampled bool) context.Context {
	var remote oteltrace.SpanContext
	if p.valid {
		remote = p.remote()
	}
	sctx, span := t.started(ctx, remote, name, t.serverOpts, ids.spanContext(p.ts), sampled)
	c.span, c.recording = span, span.IsRecording()
	return sctx
}

// finish ends the span of c, whose call returned *err, or panicked.
func (t *Tracing) finish(c *call, err *error) {
	e := errPanic
	if c.returned {
		e = *err
	}
	if c.kind == oteltrace.SpanKindClient {
		c.info.Trace = c.prev
	}
	if !c.recording && e == nil {
		return // the common case: see end
	}
	t.end(c.parent, c.span, c.recording, c.info, c.start, c.kind, e)
}

var errPanic = status.Err(codes.Internal, "trace: the call panicked")

// started makes the span the sampler decided on, sc, sampled or not: the
// fast path, taken when the provider is a *Provider, where the sampler
// decides first and a span it drops never enters the SDK. parent is the
// parent span context: ctx's span on the client, the remote one on the
// server (not yet in ctx, which saves its context on the common path).
// beginClient and beginServer make a dropped span themselves; this is
// for the rest.
func (t *Tracing) started(ctx context.Context, parent oteltrace.SpanContext, name string, opts []oteltrace.SpanStartOption, sc oteltrace.SpanContext, sampled bool) (context.Context, oteltrace.Span) {
	if !sampled {
		c := &spanCtx{Context: ctx}
		c.span.set(&t.base, sc)
		if spanKey == nil {
			return oteltrace.ContextWithSpan(ctx, &c.span), &c.span
		}
		return c, &c.span
	}
	if parent.IsRemote() {
		ctx = t.withRemote(ctx, parent)
	}
	return t.tracer.Start(&presetContext{Context: ctx, sc: sc}, name, opts...)
}

// ServerRoom is room for the span of one server call, which a server
// given a Tracing (server.WithTracing) allocates together with the call
// and puts in the call's carrier (callinfo.Carrier.Room): the Tracing's
// server middleware makes a span the sampler drops, and its context,
// there rather than in an allocation of their own. The zero ServerRoom is
// ready; it serves one call, and the first middleware to take it.
type ServerRoom struct{ r room[spanCtx] }

// ClientRoom is ServerRoom for a client call (client.WithTracing).
type ClientRoom struct{ r room[clientSpanCtx] }

// room holds one T for the first taker.
type room[T any] struct {
	taken atomic.Bool
	v     T
}

// take returns the room's T, or a new one when there is no room (r nil)
// or another took it.
func (r *room[T]) take() *T {
	if r == nil || !r.taken.CompareAndSwap(false, true) {
		return new(T)
	}
	return &r.v
}

// serverRoom returns the room the call of ctx has for its server span,
// or nil.
func serverRoom(ctx context.Context) *room[spanCtx] {
	if r, _ := callinfo.RoomFromContext(ctx).(*ServerRoom); r != nil {
		return &r.r
	}
	return nil
}

// clientRoom returns the room the call of ctx has for its client span,
// or nil.
func clientRoom(ctx context.Context) *room[clientSpanCtx] {
	if r, _ := callinfo.RoomFromContext(ctx).(*ClientRoom); r != nil {
		return &r.r
	}
	return nil
}

// clientSpanCtx is the context of a client call the sampler dropped on
// the fast path, with its span: made together, in one allocation.
type clientSpanCtx struct {
	context.Context
	span clientSpan
}

func (c *clientSpanCtx) Value(k any) any {
	if k == spanKey {
		return &c.span
	}
	return c.Context.Value(k)
}

// spanBase is what the unsampled spans of a Tracing share: the no-op
// methods, which are noop.Span's (so the spans hold one pointer for them,
// where a noop.Span holds a span context of its own), and the provider,
// for code that asks a span for one.
type spanBase struct {
	noop.Span
	tp oteltrace.TracerProvider
}

func (b *spanBase) TracerProvider() oteltrace.TracerProvider { return b.tp }

// unsampledSpan is the span of a call the sampler dropped on the fast
// path: what the SDK's non-recording span is, with the ids the sampler
// drew. It keeps the span context in parts, which saves the padding of
// an oteltrace.SpanContext.
type unsampledSpan struct {
	*spanBase
	ts  oteltrace.TraceState
	ids spanIDs
}

func (s *unsampledSpan) SpanContext() oteltrace.SpanContext { return s.ids.spanContext(s.ts) }

// set makes s the unsampled span of sc.
func (s *unsampledSpan) set(base *spanBase, sc oteltrace.SpanContext) {
	s.spanBase, s.ts = base, sc.TraceState()
	s.ids = spanIDs{tid: sc.TraceID(), sid: sc.SpanID(), flags: sc.TraceFlags()}
}

// clientSpan is the unsampled span of a client call, with the trace
// context the transports send (callinfo.Info.Trace). Its span context is
// only there, in the traceparent and the tracestate the call sends, and
// parsed back when asked for (which the common path never does): span,
// context and trace context fit a smaller allocation so.
type clientSpan struct {
	*spanBase
	trace       callinfo.TraceContext
	traceparent [traceparentLen]byte // trace.Traceparent's bytes
}

func (s *clientSpan) SpanContext() oteltrace.SpanContext {
	var scc oteltrace.SpanContextConfig
	scc.TraceID, scc.SpanID, scc.TraceFlags, _ = parseTraceparent(s.trace.Traceparent)
	if s.trace.Tracestate != "" {
		// The parent's, which it parsed: valid.
		scc.TraceState, _ = oteltrace.ParseTraceState(s.trace.Tracestate)
	}
	return oteltrace.NewSpanContext(scc)
}

// spanCtx is a context holding an unsampled span, context and span in
// one allocation where oteltrace.ContextWithSpan takes two: the fast path
// makes one per server call.
type spanCtx struct {
	context.Context
	span unsampledSpan
}

func (c *spanCtx) Value(k any) any {
	if k == spanKey {
		return &c.span
	}
	return c.Context.Value(k)
}

// spanKey is the key oteltrace.SpanFromContext looks a span up by, learnt
// by watching it ask, and checked: nil when the check fails (a future
// otel that finds spans another way), and then spanCtx is not used.
var spanKey = probeSpanKey()

func probeSpanKey() any {
	p := &keyProbe{Context: context.Background()}
	oteltrace.SpanFromContext(p)
	if p.key == nil {
		return nil
	}
	want := &unsampledSpan{spanBase: &spanBase{}, ids: spanIDs{tid: oteltrace.TraceID{1}, sid: oteltrace.SpanID{1}}}
	ctx := context.Context(&keyAnswer{Context: context.Background(), key: p.key, span: want})
	if oteltrace.SpanFromContext(ctx) != oteltrace.Span(want) || !oteltrace.SpanContextFromContext(ctx).Equal(want.SpanContext()) {
		return nil
	}
	return p.key
}

// keyProbe records the first key it is asked for.
type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(k any) any {
	if p.key == nil {
		p.key = k
	}
	return nil
}

// keyAnswer answers key with span.
type keyAnswer struct {
	context.Context
	key  any
	span oteltrace.Span
}

func (a *keyAnswer) Value(k any) any {
	if k == a.key {
		return a.span
	}
	return a.Context.Value(k)
}

// inject sends sc with the call: with the built-in W3C propagator in
// info.Trace, which every transport sends in place of a trace context the
// outgoing metadata of ctx may hold (a proxy that forwards its incoming
// metadata has its caller's there: ours must replace it, not follow it);
// with a generic propagator in the outgoing metadata of the context it
// returns. beginClient does the same for a span the sampler drops,
// without allocating.
func (t *Tracing) inject(ctx context.Context, info *callinfo.Info, sc oteltrace.SpanContext) context.Context {
	if t.prop != nil {
		var c pairs
		t.prop.Inject(ctx, &c)
		if len(c) == 0 {
			return ctx
		}
		return replaceOutgoing(ctx, c)
	}
	info.Trace = &callinfo.TraceContext{Traceparent: formatTraceparent(&sc), Tracestate: sc.TraceState().String()}
	return ctx
}

// replaceOutgoing sets the pairs in the outgoing metadata of ctx,
// replacing values already there; an empty value deletes its key.
func replaceOutgoing(ctx context.Context, p pairs) context.Context {
	md, ok := metadata.FromOutgoing(ctx)
	if !ok {
		md = metadata.MD{}
	}
	for i := 0; i < len(p); i += 2 {
		if p[i+1] == "" {
			md.Delete(p[i])
		} else {
			md.Set(p[i], p[i+1])
		}
	}
	return metadata.NewOutgoingContext(ctx, md)
}

// extract reads the caller's span context from the incoming metadata of
// ctx. With the built-in W3C propagator it returns ctx itself and the
// remote span context (invalid when there is none, or a malformed one);
// withRemote puts it in a context when needed. A generic propagator
// returns its own context, which holds the span context (and whatever
// else it carries, baggage say).
func (t *Tracing) extract(ctx context.Context) (context.Context, oteltrace.SpanContext) {
	if t.prop != nil {
		md, ok := metadata.FromIncoming(ctx)
		if !ok {
			return ctx, oteltrace.SpanContext{}
		}
		ctx = t.prop.Extract(ctx, mdCarrier(md))
		return ctx, oteltrace.SpanContextFromContext(ctx)
	}
	var p remoteParent
	if !p.read(ctx) {
		return ctx, oteltrace.SpanContext{}
	}
	return ctx, p.remote()
}

// remoteParent is the caller's span context, in parts, as the W3C trace
// context the call arrived with carries it.
type remoteParent struct {
	spanIDs
	ts    oteltrace.TraceState
	valid bool // false: none, or a malformed traceparent
}

// read reads p from the incoming metadata of ctx and returns p.valid.
func (p *remoteParent) read(ctx context.Context) bool {
	tp, ts := metadata.IncomingTraceContext(ctx)
	if tp == "" {
		return false
	}
	var err error
	if p.tid, p.sid, p.flags, err = parseTraceparent(tp); err != nil {
		return false
	}
	if ts != "" {
		// A malformed tracestate must not cost the traceparent (W3C).
		p.ts, _ = oteltrace.ParseTraceState(ts)
	}
	p.valid = true
	return true
}

// ids returns the ids of p, nil when it is not valid: draw's parent.
func (p *remoteParent) ids() *spanIDs {
	if !p.valid {
		return nil
	}
	return &p.spanIDs
}

// remote returns p as a remote span context.
func (p *remoteParent) remote() oteltrace.SpanContext {
	return oteltrace.NewSpanContext(oteltrace.SpanContextConfig{TraceID: p.tid, SpanID: p.sid, TraceFlags: p.flags, TraceState: p.ts, Remote: true})
}

// withRemote returns base holding the remote span context extract found,
// unless base already holds it (a generic propagator's context).
func (t *Tracing) withRemote(base context.Context, remote oteltrace.SpanContext) context.Context {
	if t.prop != nil || !remote.IsValid() {
		return base
	}
	return oteltrace.ContextWithRemoteSpanContext(base, remote)
}

// end finishes span, which was recording or not when it started (asked
// then, so that the common case, a call that succeeds on a span the
// sampler dropped, does not touch the span again). parent is the context
// span was started in; an error-capture span starts there too (on the
// server, under the caller's span context found there again).
func (t *Tracing) end(parent context.Context, span oteltrace.Span, recording bool, info *callinfo.Info, start time.Time, kind oteltrace.SpanKind, err error) {
	if !recording && err == nil {
		return
	}
	code := status.Code(err)
	failed := err != nil && (kind == oteltrace.SpanKindClient || serverFault(code))
	if !recording {
		if !failed || !t.capture {
			return
		}
		sc := span.SpanContext()
		if !sc.IsValid() || sc.IsSampled() || !t.limit.allow() {
			return
		}
		// Error capture: replay the span, sampled this time, with the ids
		// the downstream services already know it by.
		opts := [...]oteltrace.SpanStartOption{oteltrace.WithSpanKind(kind), oteltrace.WithTimestamp(start)}
		if kind == oteltrace.SpanKindServer {
			// The server span's parent: the caller's span context.
			var remote oteltrace.SpanContext
			parent, remote = t.extract(parent)
			parent = t.withRemote(parent, remote)
		}
		pctx := &presetContext{Context: parent, sc: sc, capture: true}
		_, span = t.tracer.Start(pctx, t.spanName(info), opts[:]...)
		if !span.IsRecording() { // not our sampler
			return
		}
	}
	t.setAttributes(span, info, kind, code, failed)
	if failed {
		span.SetStatus(otelcodes.Error, status.Convert(err).Message())
	}
	span.End()
}

// captureLimit lets perSecond error-capture spans through per second of
// clock time; a negative perSecond lets all through.
type captureLimit struct {
	perSecond int64
	clock     func() time.Time
	second    atomic.Int64 // the Unix second count belongs to
	count     atomic.Int64
}

func (l *captureLimit) allow() bool {
	if l.perSecond < 0 {
		return true
	}
	sec := l.clock().Unix()
	if cur := l.second.Load(); cur != sec {
		if l.second.CompareAndSwap(cur, sec) {
			l.count.Store(0)
		}
	}
	return l.count.Add(1) <= l.perSecond
}

// clockBase makes now cheaper than time.Now: one monotonic clock read.
var clockBase = time.Now()

// now returns the current time from the monotonic clock.
func now() time.Time { return clockBase.Add(time.Since(clockBase)) }

// serverFault reports whether a server span with code c is an error, as
// the gRPC semantic conventions say: the codes that mean the server could
// not do its job. Client spans are errors for any code but OK.
func serverFault(c codes.Code) bool {
	switch c {
	case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}

// spanName returns "pkg.Service/Method" without allocating once the
// method has been seen.
func (t *Tracing) spanName(info *callinfo.Info) string {
	if fm := info.FullMethod; len(fm) > 1 && fm[0] == '/' {
		return fm[1:]
	}
	return t.names.get(info.Service, info.Method)
}

// names caches span names by service and method: a copy-on-write map,
// so the hot path is a lock-free lookup.
type names struct {
	m  atomic.Pointer[map[methodKey]string]
	mu sync.Mutex
}

type methodKey struct{ service, method string }

// namedMethod is a method with its span name.
type namedMethod struct {
	methodKey
	name string
}

// maxNames bounds the cache against a client that invents method names.
const maxNames = 4096

func (n *names) get(service, method string) string {
	k := methodKey{service, method}
	if m := n.m.Load(); m != nil {
		if s, ok := (*m)[k]; ok {
			return s
		}
	}
	s := service + "/" + method
	n.mu.Lock()
	defer n.mu.Unlock()
	var old map[methodKey]string
	if m := n.m.Load(); m != nil {
		old = *m
	}
	if len(old) < maxNames {
		next := make(map[methodKey]string, len(old)+1)
		for k, v := range old {
			next[k] = v
		}
		next[k] = s
		n.m.Store(&next)
	}
	return s
}

// pairs is a propagation.TextMapCarrier collecting key/value pairs.
type pairs []string

func (p *pairs) Get(key string) string {
	for i := 0; i+1 < len(*p); i += 2 {
		if (*p)[i] == key {
			return (*p)[i+1]
		}
	}
	return ""
}

func (p *pairs) Set(key, value string) { *p = append(*p, key, value) }

func (p *pairs) Keys() []string {
	keys := make([]string, 0, len(*p)/2)
	for i := 0; i < len(*p); i += 2 {
		keys = append(keys, (*p)[i])
	}
	return keys
}

// mdCarrier reads incoming metadata for a propagator.
type mdCarrier metadata.MD

func (c mdCarrier) Get(key string) string { return metadata.MD(c).Value(key) }
func (c mdCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }
func (c mdCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
