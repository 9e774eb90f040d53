package trace_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/internal/tracingtest"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/observe/trace"
	"github.com/sluicerpc/sluice/server"
	"github.com/sluicerpc/sluice/status"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	echoService = "sluice.examples.echo.v1.EchoService"
	echoName    = echoService + "/Echo"
)

// steered answers "err:<Code>" with that code, "panic" with a panic, and
// echoes anything else along with the traceparent it received.
type steered struct {
	echopb.UnimplementedEchoServiceServer
}

func (steered) Echo(ctx context.Context, req *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	if name, ok := strings.CutPrefix(req.Message, "err:"); ok {
		c, _ := status.ParseName(name)
		return nil, status.Errorf(c, "steered: %s as asked", name)
	}
	if req.Message == "panic" {
		panic("steered: panic as asked")
	}
	md, _ := metadata.FromIncoming(ctx)
	return &echopb.EchoResponse{Message: req.Message, ServedBy: md.Value(trace.TraceparentKey)}, nil
}

// rig is a loopback echo server and a client to it, traced by the same
// in-memory exporter.
type rig struct {
	exp  *tracetest.InMemoryExporter
	tp   *trace.Provider
	echo echopb.EchoServiceClient
}

type rigConfig struct {
	sampler  trace.SamplerConfig
	trace    trace.Config
	protocol client.Protocol
	server   []endpoint.Middleware // after the tracing middleware
	noClient bool                  // no tracing middleware on the client
	path     path
}

// sdkOnly hides a *trace.Provider from trace.New, which then takes the
// SDK path instead of the fast path.
type sdkOnly struct{ oteltrace.TracerProvider }

// path is how a test traces its calls: with a *Provider (the fast path)
// or through the SDK (sdk), and with the middlewares installed by
// WithMiddleware or by server.WithTracing and client.WithTracing
// (options: the calls then have room for their spans).
type path struct{ sdk, options bool }

// paths runs a test on the fast path, on the fast path with the tracing
// options, and on the SDK path: all must trace alike.
func paths(t *testing.T, test func(t *testing.T, p path)) {
	t.Run("fast", func(t *testing.T) { test(t, path{}) })
	t.Run("fast-options", func(t *testing.T) { test(t, path{options: true}) })
	t.Run("sdk", func(t *testing.T) { test(t, path{sdk: true}) })
}

func newRig(t *testing.T, rc rigConfig) *rig {
	t.Helper()
	tp, exp := tracingtest.Provider(t, rc.sampler)
	cfg := rc.trace
	cfg.TracerProvider = tp
	if rc.path.sdk {
		cfg.TracerProvider = sdkOnly{tp}
	}
	tr, err := trace.New(cfg)
	if err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sopts := []server.Option{server.WithLogger(slog.New(slog.DiscardHandler))}
	if rc.path.options {
		// Given last, still first in the chain.
		sopts = append(sopts, server.WithMiddleware(rc.server...), server.WithTracing(tr))
	} else {
		sopts = append(sopts, server.WithMiddleware(append([]endpoint.Middleware{tr.Server()}, rc.server...)...))
	}
	s := server.New(sopts...)
	echopb.RegisterEchoServiceServer(s, steered{})
	go s.Serve(ln)
	t.Cleanup(s.Stop)

	copts := []client.Option{client.WithProtocol(rc.protocol)}
	switch {
	case rc.noClient:
	case rc.path.options:
		copts = append(copts, client.WithTracing(tr))
	default:
		copts = append(copts, client.WithMiddleware(tr.Client()))
	}
	c, err := client.New(ln.Addr().String(), copts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rig{exp: exp, tp: tp, echo: echopb.NewEchoServiceClient(c)}
}

// spans returns the exported spans by kind; it fails unless there is at
// most one of each.
func (r *rig) spans(t *testing.T) (client, server *tracetest.SpanStub) {
	t.Helper()
	for _, s := range r.exp.GetSpans() {
		switch s.SpanKind {
		case oteltrace.SpanKindClient:
			if client != nil {
				t.Fatalf("two client spans: %v and %v", client.Name, s.Name)
			}
			client = &s
		case oteltrace.SpanKindServer:
			if server != nil {
				t.Fatalf("two server spans: %v and %v", server.Name, s.Name)
			}
			server = &s
		}
	}
	return client, server
}

func attrs(s *tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

func wantAttrs(t *testing.T, s *tracetest.SpanStub, want map[string]any) {
	t.Helper()
	got := attrs(s)
	for k, w := range want {
		v, ok := got[attribute.Key(k)]
		if w == nil {
			if ok {
				t.Errorf("%v span: %s = %v, want it absent", s.SpanKind, k, v.Emit())
			}
			continue
		}
		if !ok {
			t.Errorf("%v span: no %s, want %v", s.SpanKind, k, w)
			continue
		}
		var match bool
		switch w := w.(type) {
		case string:
			match = v.Type() == attribute.STRING && v.AsString() == w
		case int:
			match = v.Type() == attribute.INT64 && v.AsInt64() == int64(w)
		case bool:
			match = v.Type() == attribute.BOOL && v.AsBool() == w
		}
		if !match {
			t.Errorf("%v span: %s = %v (%v), want %v", s.SpanKind, k, v.Emit(), v.Type(), w)
		}
	}
}

var protocols = []struct {
	p       client.Protocol
	classic string // rpc.system
	current string // rpc.system.name
}{
	{client.Native, "kitex", "kitex"},
	{client.GRPC, "grpc", "grpc"},
	{client.Connect, "connect_rpc", "connectrpc"},
}

// TestSpans checks the client and server spans of one sampled call on
// every protocol: one trace, the server span a child of the client span,
// the client span a child of the caller's, and the attributes.
func TestSpans(t *testing.T) {
	paths(t, func(t *testing.T, p path) {
		for _, pc := range protocols {
			t.Run(pc.p.String(), func(t *testing.T) {
				r := newRig(t, rigConfig{sampler: trace.SamplerConfig{Ratio: 1}, protocol: pc.p, path: p})
				ctx, caller := r.tp.Tracer("test").Start(context.Background(), "caller")
				resp, err := r.echo.Echo(ctx, &echopb.EchoRequest{Message: "hi"})
				caller.End()
				if err != nil {
					t.Fatal(err)
				}
				cs, ss := r.spans(t)
				if cs == nil || ss == nil {
					t.Fatalf("spans: client %v, server %v; want both", cs != nil, ss != nil)
				}
				for _, s := range []*tracetest.SpanStub{cs, ss} {
					if s.Name != echoName {
						t.Errorf("%v span name %q, want %q", s.SpanKind, s.Name, echoName)
					}
					if s.SpanContext.TraceID() != caller.SpanContext().TraceID() {
						t.Errorf("%v span in trace %v, want the caller's %v", s.SpanKind, s.SpanContext.TraceID(), caller.SpanContext().TraceID())
					}
					if s.Status.Code != otelcodes.Unset {
						t.Errorf("%v span status %v, want Unset", s.SpanKind, s.Status)
					}
					if s.InstrumentationScope.Name != trace.ScopeName {
						t.Errorf("%v span scope %q", s.SpanKind, s.InstrumentationScope.Name)
					}
				}
				if cs.Parent.SpanID() != caller.SpanContext().SpanID() {
					t.Errorf("client span's parent %v, want the caller's span %v", cs.Parent.SpanID(), caller.SpanContext().SpanID())
				}
				if ss.Parent.SpanID() != cs.SpanContext.SpanID() || !ss.Parent.IsRemote() {
					t.Errorf("server span's parent %v (remote %v), want the client span %v, remote", ss.Parent.SpanID(), ss.Parent.IsRemote(), cs.SpanContext.SpanID())
				}
				wantTP := "00-" + cs.SpanContext.TraceID().String() + "-" + cs.SpanContext.SpanID().String() + "-01"
				if resp.ServedBy != wantTP {
					t.Errorf("server got traceparent %q, want %q", resp.ServedBy, wantTP)
				}
				common := map[string]any{
					"rpc.system":           pc.classic,
					"rpc.service":          echoService,
					"rpc.method":           "Echo",
					"rpc.grpc.status_code": 0,
					"rpc.system.name":      nil,
				}
				wantAttrs(t, cs, common)
				wantAttrs(t, ss, common)
				wantAttrs(t, cs, map[string]any{"server.address": "127.0.0.1", "network.peer.address": nil})
				wantAttrs(t, ss, map[string]any{"network.peer.address": "127.0.0.1", "server.address": nil})
				if p := attrs(cs)["server.port"]; p.AsInt64() <= 0 {
					t.Errorf("client span: server.port %v", p.Emit())
				}
			})
		}
	})
}

// TestAttributeSets checks the current and dual semantic conventions.
func TestAttributeSets(t *testing.T) {
	paths(t, func(t *testing.T, p path) {
		for _, tc := range []struct {
			set  trace.Attributes
			want map[string]any
		}{
			{trace.AttributesCurrent, map[string]any{
				"rpc.system.name": "connectrpc", "rpc.method": echoName, "rpc.response.status_code": "NOT_FOUND",
				"error.type": "NOT_FOUND", "rpc.system": nil, "rpc.service": nil, "rpc.grpc.status_code": nil,
			}},
			{trace.AttributesBoth, map[string]any{
				"rpc.system.name": "connectrpc", "rpc.method": echoName, "rpc.response.status_code": "NOT_FOUND",
				"rpc.system": "connect_rpc", "rpc.service": echoService, "rpc.grpc.status_code": int(codes.NotFound),
				"rpc.connect_rpc.error_code": "not_found",
			}},
		} {
			r := newRig(t, rigConfig{sampler: trace.SamplerConfig{Ratio: 1}, trace: trace.Config{Attributes: tc.set}, protocol: client.Connect, path: p})
			_, err := r.echo.Echo(context.Background(), &echopb.EchoRequest{Message: "err:NotFound"})
			if status.Code(err) != codes.NotFound {
				t.Fatalf("err %v, want NotFound", err)
			}
			cs, ss := r.spans(t)
			wantAttrs(t, cs, tc.want)
			delete(tc.want, "error.type") // NotFound is not the server's fault
			wantAttrs(t, ss, tc.want)
		}
		if _, err := trace.New(trace.Config{Attributes: 9}); err == nil {
			t.Error("New accepted Attributes 9")
		}
	})
}

// TestErrorStatus: a client span is an error for every code but OK; a
// server span only for the codes that mean the server failed.
func TestErrorStatus(t *testing.T) {
	paths(t, func(t *testing.T, p path) {
		for _, tc := range []struct {
			msg         string
			code        codes.Code
			serverError bool
		}{
			{"err:Unavailable", codes.Unavailable, true},
			{"err:Internal", codes.Internal, true},
			{"panic", codes.Internal, true},
			{"err:NotFound", codes.NotFound, false},
			{"err:InvalidArgument", codes.InvalidArgument, false},
		} {
			t.Run(tc.msg, func(t *testing.T) {
				r := newRig(t, rigConfig{sampler: trace.SamplerConfig{Ratio: 1}, path: p})
				_, err := r.echo.Echo(context.Background(), &echopb.EchoRequest{Message: tc.msg})
				if status.Code(err) != tc.code {
					t.Fatalf("err %v, want %v", err, tc.code)
				}
				cs, ss := r.spans(t)
				if cs.Status.Code != otelcodes.Error || cs.Status.Description != status.Convert(err).Message() {
					t.Errorf("client span status %+v, want Error %q", cs.Status, status.Convert(err).Message())
				}
				wantAttrs(t, cs, map[string]any{"rpc.grpc.status_code": int(tc.code)})
				wantServer := otelcodes.Unset
				if tc.serverError {
					wantServer = otelcodes.Error
				}
				if ss.Status.Code != wantServer || (tc.serverError && ss.Status.Description == "") {
					t.Errorf("server span status %+v, want %v with a message", ss.Status, wantServer)
				}
			})
		}
	})
}

// TestErrorCapture: with nothing sampled, a failed call is exported all
// the same, client and server spans linked as a sampled call's are, and a
// successful call is not.
func TestErrorCapture(t *testing.T) {
	paths(t, func(t *testing.T, p path) {
		r := newRig(t, rigConfig{sampler: trace.SamplerConfig{Ratio: -1}, path: p})
		ctx := context.Background()
		resp, err := r.echo.Echo(ctx, &echopb.EchoRequest{Message: "ok"})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(r.exp.GetSpans()); n != 0 {
			t.Fatalf("%d spans exported for an unsampled call that succeeded", n)
		}
		if !strings.HasSuffix(resp.ServedBy, "-00") {
			t.Errorf("server got traceparent %q, want the unsampled flags 00", resp.ServedBy)
		}

		_, err = r.echo.Echo(ctx, &echopb.EchoRequest{Message: "err:Unavailable"})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("err %v", err)
		}
		cs, ss := r.spans(t)
		if cs == nil || ss == nil {
			t.Fatalf("captured client %v, server %v; want both", cs != nil, ss != nil)
		}
		if cs.SpanContext.TraceID() != ss.SpanContext.TraceID() || ss.Parent.SpanID() != cs.SpanContext.SpanID() {
			t.Errorf("server span %v parent %v, client span %v: want one trace, server under client", ss.SpanContext.TraceID(), ss.Parent.SpanID(), cs.SpanContext.SpanID())
		}
		for _, s := range []*tracetest.SpanStub{cs, ss} {
			if s.Status.Code != otelcodes.Error || !s.SpanContext.IsSampled() {
				t.Errorf("%v span status %v sampled %v, want Error and sampled", s.SpanKind, s.Status.Code, s.SpanContext.IsSampled())
			}
			wantAttrs(t, s, map[string]any{string(trace.ErrorCaptureKey): true, "rpc.grpc.status_code": int(codes.Unavailable)})
			if !s.EndTime.After(s.StartTime) {
				t.Errorf("%v span from %v to %v", s.SpanKind, s.StartTime, s.EndTime)
			}
		}
		if cs.Parent.IsValid() {
			t.Errorf("client span has parent %v, want a root", cs.Parent)
		}

		// NotFound is the client's failure only.
		r.exp.Reset()
		_, err = r.echo.Echo(ctx, &echopb.EchoRequest{Message: "err:NotFound"})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("err %v", err)
		}
		cs, ss = r.spans(t)
		if cs == nil || ss != nil {
			t.Errorf("NotFound: captured client %v, server %v; want the client span only", cs != nil, ss != nil)
		}
	})
}

// TestErrorCaptureChild: under an unsampled caller span, a failed call's
// captured span keeps the caller as its parent.
func TestErrorCaptureChild(t *testing.T) {
	paths(t, func(t *testing.T, p path) {
		r := newRig(t, rigConfig{sampler: trace.SamplerConfig{Ratio: -1}, path: p})
		ctx, caller := r.tp.Tracer("test").Start(context.Background(), "caller")
		defer caller.End()
		if caller.SpanContext().IsSampled() {
			t.Fatal("caller sampled with Ratio -1")
		}
		_, err := r.echo.Echo(ctx, &echopb.EchoRequest{Message: "err:Internal"})
		if status.Code(err) != codes.Internal {
			t.Fatalf("err %v", err)
		}
		cs, ss := r.spans(t)
		if cs == nil || ss == nil {
			t.Fatal("not captured")
		}
		if cs.Parent.SpanID() != caller.SpanContext().SpanID() || cs.SpanContext.TraceID() != caller.SpanContext().TraceID() {
			t.Errorf("captured client span parent %v in trace %v, want caller %v", cs.Parent.SpanID(), cs.SpanContext.TraceID(), caller.SpanContext().SpanID())
		}
	})
}

func TestErrorCaptureDisabled(t *testing.T) {
	paths(t, func(t *testing.T, p path) {
		r := newRig(t, rigConfig{sampler: trace.SamplerConfig{Ratio: -1}, trace: trace.Config{DisableErrorCapture: true}, path: p})
		if _, err := r.echo.Echo(context.Background(), &echopb.EchoRequest{Message: "err:Unavailable"}); err == nil {
			t.Fatal("no error")
		}
		if n := len(r.exp.GetSpans()); n != 0 {
			t.Errorf("%d spans exported with error capture off", n)
		}
	})
}

// TestAlways: a forced method is sampled under an unsampled caller too.
func TestAlways(t *testing.T) {
	paths(t, func(t *testing.T, p path) {
		r := newRig(t, rigConfig{sampler: trace.SamplerConfig{Ratio: -1, Always: []string{"/" + echoName}}, path: p})
		ctx, caller := r.tp.Tracer("test").Start(context.Background(), "caller")
		defer caller.End()
		resp, err := r.echo.Echo(ctx, &echopb.EchoRequest{Message: "ok"})
		if err != nil {
			t.Fatal(err)
		}
		cs, ss := r.spans(t)
		if cs == nil || ss == nil {
			t.Fatalf("forced method: client %v server %v spans, want both", cs != nil, ss != nil)
		}
		if !strings.HasSuffix(resp.ServedBy, "-01") {
			t.Errorf("server got %q, want sampled flags", resp.ServedBy)
		}
	})
}

// TestGenericPropagator runs the propagator's own Inject and Extract.
func TestGenericPropagator(t *testing.T) {
	paths(t, func(t *testing.T, p path) {
		prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
		r := newRig(t, rigConfig{sampler: trace.SamplerConfig{Ratio: 1}, trace: trace.Config{Propagator: prop}, protocol: client.GRPC, path: p})
		if _, err := r.echo.Echo(context.Background(), &echopb.EchoRequest{Message: "hi"}); err != nil {
			t.Fatal(err)
		}
		cs, ss := r.spans(t)
		if ss.Parent.SpanID() != cs.SpanContext.SpanID() {
			t.Errorf("server span's parent %v, want client span %v", ss.Parent.SpanID(), cs.SpanContext.SpanID())
		}
	})
}

// TestForwardedTraceparent: a traceparent already in the outgoing
// metadata (a proxy forwarding what it received) gives way to the client
// span's.
func TestForwardedTraceparent(t *testing.T) {
	paths(t, func(t *testing.T, pa path) {
		for _, p := range []client.Protocol{client.Native, client.GRPC, client.Connect} {
			r := newRig(t, rigConfig{sampler: trace.SamplerConfig{Ratio: 1}, path: pa, protocol: p})
			stale := "00-11111111111111111111111111111111-2222222222222222-01"
			ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs(trace.TraceparentKey, stale, trace.TracestateKey, "stale=1", "x-keep", "yes"))
			resp, err := r.echo.Echo(ctx, &echopb.EchoRequest{Message: "hi"})
			if err != nil {
				t.Fatal(err)
			}
			cs, ss := r.spans(t)
			if ss.Parent.SpanID() != cs.SpanContext.SpanID() || resp.ServedBy == stale {
				t.Errorf("%v: server got %q, parent %v; want the client span %v", p, resp.ServedBy, ss.Parent.SpanID(), cs.SpanContext.SpanID())
			}
			if ss.Parent.TraceState().Len() != 0 {
				t.Errorf("%v: server got the stale tracestate %v", p, ss.Parent.TraceState())
			}
		}
	})
}

// TestClientTraceContext: the client middleware hands the span's trace
// context to the transports in the call info, not in the outgoing
// metadata, and puts back what the call info had when the call returns.
func TestClientTraceContext(t *testing.T) {
	paths(t, func(t *testing.T, p path) {
		for _, ratio := range []float64{1, -1} {
			tp, err := trace.NewProvider(trace.ProviderConfig{Sampler: trace.SamplerConfig{Ratio: ratio}})
			if err != nil {
				t.Fatal(err)
			}
			defer tp.Shutdown(context.Background())
			cfg := trace.Config{TracerProvider: tp}
			if p.sdk {
				cfg.TracerProvider = sdkOnly{tp}
			}
			tr, err := trace.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var sent, sentCopy string
			inner := func(ctx context.Context, req, resp any) error {
				tc := callinfo.FromContext(ctx).Trace
				if tc == nil {
					return errors.New("no trace context in the call info")
				}
				sc := oteltrace.SpanContextFromContext(ctx)
				want := fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags())
				if tc.Traceparent != want {
					return fmt.Errorf("traceparent %q, want the span's %q", tc.Traceparent, want)
				}
				if _, ok := metadata.OutgoingValue(ctx, trace.TraceparentKey); ok {
					return errors.New("traceparent in the outgoing metadata too")
				}
				sent, sentCopy = tc.Traceparent, strings.Clone(tc.Traceparent)
				return nil
			}
			prev := &callinfo.TraceContext{Traceparent: "earlier"}
			c := &callinfo.Carrier{Context: context.Background()}
			c.Info = callinfo.Info{Side: callinfo.Client, Service: "pkg.Svc", Method: "M", FullMethod: "/pkg.Svc/M", Attempt: 1, Start: time.Now(), Trace: prev}
			if err := tr.Client()(inner)(c, nil, nil); err != nil {
				t.Fatalf("ratio %v: %v", ratio, err)
			}
			if c.Info.Trace != prev {
				t.Errorf("ratio %v: call info's trace context %v after the call, want the earlier one back", ratio, c.Info.Trace)
			}
			if sent != sentCopy {
				t.Errorf("ratio %v: sent traceparent %q became %q after the call", ratio, sentCopy, sent)
			}
		}
	})
}

// TestRequireContext: calls without trace context are rejected with a
// message that says why; traced calls pass, sampled or not.
func TestRequireContext(t *testing.T) {
	paths(t, func(t *testing.T, p path) {
		for _, tc := range []struct {
			name        string
			traced      bool
			traceparent string
			want        codes.Code
			msg         string
		}{
			{"traced", true, "", codes.OK, ""},
			{"none", false, "", codes.InvalidArgument, "no traceparent"},
			{"garbage", false, "garbage", codes.InvalidArgument, "malformed traceparent"},
			{"zero trace id", false, "00-00000000000000000000000000000000-2222222222222222-01", codes.InvalidArgument, "trace id is all zeros"},
			{"upper case", false, "00-1111111111111111111111111111111A-2222222222222222-01", codes.InvalidArgument, "lower case"},
			{"valid by hand", false, "00-11111111111111111111111111111111-2222222222222222-00", codes.OK, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := newRig(t, rigConfig{sampler: trace.SamplerConfig{Ratio: -1}, server: []endpoint.Middleware{trace.RequireContext()}, noClient: !tc.traced, path: p})
				ctx := context.Background()
				if tc.traceparent != "" {
					ctx = metadata.AppendToOutgoing(ctx, trace.TraceparentKey, tc.traceparent)
				}
				_, err := r.echo.Echo(ctx, &echopb.EchoRequest{Message: "hi"})
				if status.Code(err) != tc.want || !strings.Contains(errMsg(err), tc.msg) {
					t.Errorf("err %v, want %v containing %q", err, tc.want, tc.msg)
				}
				if tc.want == codes.InvalidArgument && !strings.Contains(errMsg(err), echoName) {
					t.Errorf("message %q does not name the method", errMsg(err))
				}
			})
		}
	})
}

func errMsg(err error) string {
	if err == nil {
		return ""
	}
	return status.Convert(err).Message()
}

// TestNoCallInfo: outside a Sluice call the middlewares only pass through.
func TestNoCallInfo(t *testing.T) {
	tr, err := trace.New(trace.Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := errors.New("inner")
	ep := func(context.Context, any, any) error { return want }
	for _, mw := range []endpoint.Middleware{tr.Client(), tr.Server()} {
		if err := mw(ep)(context.Background(), nil, nil); err != want {
			t.Errorf("err %v, want %v", err, want)
		}
	}
}

func TestNewOTLPExporter(t *testing.T) {
	ctx := context.Background()
	for _, ep := range []string{"127.0.0.1:4317", "http://127.0.0.1:4317", "https://collector.example:4317"} {
		exp, err := trace.NewOTLPExporter(ctx, ep)
		if err != nil {
			t.Errorf("%q: %v", ep, err)
			continue
		}
		if err := exp.Shutdown(ctx); err != nil {
			t.Errorf("%q: shutdown: %v", ep, err)
		}
	}
	for _, ep := range []string{"", "ftp://127.0.0.1:4317"} {
		if _, err := trace.NewOTLPExporter(ctx, ep); err == nil || !strings.HasPrefix(err.Error(), "trace: ") {
			t.Errorf("%q: err %v, want a trace: error", ep, err)
		}
	}
}

func TestNewProviderValidates(t *testing.T) {
	for _, sc := range []trace.SamplerConfig{{Ratio: 1.5}, {Always: []string{"Echo"}}, {Always: []string{"/a/b/c"}}, {Always: []string{"/svc/"}}} {
		if _, err := trace.NewProvider(trace.ProviderConfig{Sampler: sc}); err == nil {
			t.Errorf("%+v accepted", sc)
		}
	}
	tp, err := trace.NewProvider(trace.ProviderConfig{Exporter: tracetest.NewNoopExporter()})
	if err != nil {
		t.Fatal(err)
	}
	tp.Shutdown(context.Background())
}
