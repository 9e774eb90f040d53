package trace_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/internal/loadgen"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/observe/metrics"
	"github.com/sluicerpc/sluice/observe/trace"
	"github.com/sluicerpc/sluice/server"
	"github.com/sluicerpc/sluice/status"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
)

// design is one way of tracing at 1% with error capture.
type design struct {
	name  string
	build func(tb testing.TB) *trace.Tracing // nil: no tracing
}

var designs = []design{
	{"off", nil},
	// Sluice's: a span the sampler drops never enters the SDK; a failed
	// call replays its span, sampled, with the same ids.
	{"sluice-1%", func(tb testing.TB) *trace.Tracing {
		tp, err := trace.NewProvider(trace.ProviderConfig{Exporter: tracetest.NewNoopExporter()})
		return newTracing(tb, tp, err, trace.Config{TracerProvider: tp})
	}},
	// The same with error capture unbounded: the cost of capturing every
	// failure (the default bound, DefaultErrorCaptureRate, lets 100 a
	// second through, so /fail above mostly measures failures not captured).
	{"sluice-1%-capture-all", func(tb testing.TB) *trace.Tracing {
		tp, err := trace.NewProvider(trace.ProviderConfig{Exporter: tracetest.NewNoopExporter()})
		return newTracing(tb, tp, err, trace.Config{TracerProvider: tp, ErrorCaptureRate: -1})
	}},
	// The same sampler and error capture through the SDK (what any
	// provider other than a *trace.Provider gets).
	{"sluice-1%-sdk-path", func(tb testing.TB) *trace.Tracing {
		tp, err := trace.NewProvider(trace.ProviderConfig{Exporter: tracetest.NewNoopExporter()})
		return newTracing(tb, tp, err, trace.Config{TracerProvider: sdkOnly{tp}})
	}},
	// The alternative: unsampled spans are recorded (RecordOnly) and a
	// processor exports those that end with status Error.
	{"record-only-1%", func(tb testing.TB) *trace.Tracing {
		notSampled := sdktrace.AlwaysRecord(sdktrace.NeverSample())
		tp := sdktrace.NewTracerProvider(
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysRecord(sdktrace.TraceIDRatioBased(0.01)),
				sdktrace.WithRemoteParentNotSampled(notSampled), sdktrace.WithLocalParentNotSampled(notSampled))),
			sdktrace.WithSpanProcessor(errorsOnly{sdktrace.NewBatchSpanProcessor(tracetest.NewNoopExporter())}),
		)
		return newTracing(tb, tp, nil, trace.Config{TracerProvider: tp, DisableErrorCapture: true})
	}},
	// Every span sampled, none exported: what a sampled call costs in
	// the SDK itself (rpcbench's sluice+observability row has no exporter).
	{"sluice-100%-no-exporter", func(tb testing.TB) *trace.Tracing {
		tp, err := trace.NewProvider(trace.ProviderConfig{Sampler: trace.SamplerConfig{Ratio: 1}})
		return newTracing(tb, tp, err, trace.Config{TracerProvider: tp})
	}},
	{"sluice-100%", func(tb testing.TB) *trace.Tracing {
		tp, err := trace.NewProvider(trace.ProviderConfig{Sampler: trace.SamplerConfig{Ratio: 1}, Exporter: tracetest.NewNoopExporter()})
		return newTracing(tb, tp, err, trace.Config{TracerProvider: tp})
	}},
}

func newTracing(tb testing.TB, tp interface{ Shutdown(context.Context) error }, err error, cfg trace.Config) *trace.Tracing {
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tp.Shutdown(context.Background()) })
	tr, err := trace.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return tr
}

// errorsOnly passes sampled spans on, and unsampled ones that failed as
// if sampled: the processor half of the record-only design.
type errorsOnly struct{ sdktrace.SpanProcessor }

func (p errorsOnly) OnEnd(s sdktrace.ReadOnlySpan) {
	switch {
	case s.SpanContext().IsSampled():
		p.SpanProcessor.OnEnd(s)
	case s.Status().Code == otelcodes.Error:
		p.SpanProcessor.OnEnd(sampledView{s})
	}
}

type sampledView struct{ sdktrace.ReadOnlySpan }

func (v sampledView) SpanContext() oteltrace.SpanContext {
	sc := v.ReadOnlySpan.SpanContext()
	return sc.WithTraceFlags(sc.TraceFlags() | oteltrace.FlagsSampled)
}

// BenchmarkMiddleware runs the client middleware, a wire that carries the
// traceparent, and the server middleware in process: what tracing adds
// to one call on both sides, without the network. New traces, 1%
// sampled; "fail" calls end with Unavailable, which error capture
// exports.
func BenchmarkMiddleware(b *testing.B) {
	for _, d := range designs {
		for _, fail := range []bool{false, true} {
			name := d.name + "/ok"
			if fail {
				name = d.name + "/fail"
			}
			b.Run(name, func(b *testing.B) { benchMiddleware(b, d, fail) })
		}
	}
}

// BenchmarkObservability is BenchmarkMiddleware with rpcbench's
// sluice+observability set: metrics and tracing (1%, no exporter), both
// sides, as server.WithMetrics and client.WithMetrics place them.
func BenchmarkObservability(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "metrics+trace"}[on], func(b *testing.B) {
			d := design{name: "off"}
			var cm, sm []endpoint.Middleware
			if on {
				d.build = func(tb testing.TB) *trace.Tracing {
					tp, err := trace.NewProvider(trace.ProviderConfig{})
					return newTracing(tb, tp, err, trace.Config{TracerProvider: tp})
				}
				for _, mw := range []*[]endpoint.Middleware{&cm, &sm} {
					m, err := metrics.New(metrics.Config{NoRuntimeMetrics: true})
					if err != nil {
						b.Fatal(err)
					}
					if mw == &cm {
						*mw = []endpoint.Middleware{m.Client()}
					} else {
						*mw = []endpoint.Middleware{m.Server()}
					}
				}
			}
			benchMiddleware(b, d, false, cm, sm)
		})
	}
}

// benchMiddleware runs d's middlewares after outerClient on the client
// and after outerServer on the server. Each call makes its call records
// as the client and the server do: a carrier per side, with room for the
// span (and the server's incoming trace context) when tracing, as
// client.WithTracing and server.WithTracing make them.
func benchMiddleware(b *testing.B, d design, fail bool, outer ...[]endpoint.Middleware) {
	var cmw, smw []endpoint.Middleware
	if len(outer) == 2 {
		cmw, smw = outer[0], outer[1]
	}
	traced := d.build != nil
	if traced {
		tr := d.build(b)
		cmw, smw = append(cmw, tr.Client()), append(smw, tr.Server())
	}
	unavailable := status.Err(codes.Unavailable, "bench: failing as asked")
	handler := func(ctx context.Context, req, resp any) error {
		if fail {
			return unavailable
		}
		resp.(*endpoint.Reply).Msg = req
		return nil
	}
	srv := endpoint.Chain(smw...)(handler)
	// The calls' start and end times, as the framework sets them on both
	// sides (read once here: the clock is the framework's cost, not
	// tracing's).
	start := time.Now()
	end := start.Add(time.Millisecond)
	wire := func(ctx context.Context, req, resp any) error {
		var (
			sc *serverCall
			in *metadata.TraceRoom
		)
		if traced {
			t := &tracedServerCall{}
			sc, in = &t.serverCall, &t.in
			sc.c.Room = &t.span
		} else {
			sc = &serverCall{}
		}
		sc.c.Context = context.Background()
		si := &sc.c.Info
		si.Side, si.Service, si.Method, si.Protocol, si.Peer, si.Attempt, si.Start = callinfo.Server, echoService, "Echo", "ttheader", "127.0.0.1:5000", 1, start
		// What a transport sends: the call info's trace context, else
		// the outgoing metadata's; and what the native server makes of it.
		info := callinfo.FromContext(ctx)
		var tp string
		if tc := info.Trace; tc != nil {
			tp = tc.Traceparent
		} else {
			tp, _ = metadata.OutgoingValue(ctx, trace.TraceparentKey)
		}
		if tp != "" {
			sc.c.Context = metadata.NewIncomingContextIn(in, sc.c.Context, nil, tp, "")
		}
		err := srv(&sc.c, req, &sc.reply)
		info.End = end
		return err
	}
	cli := endpoint.Chain(cmw...)(wire)
	req := &echopb.EchoRequest{Message: "bench"}
	b.ReportAllocs()
	for b.Loop() {
		var cc *callinfo.Carrier
		if traced {
			t := &tracedClientCall{}
			cc = &t.c
			cc.Room = &t.span
		} else {
			cc = &callinfo.Carrier{}
		}
		cc.Context = context.Background()
		ci := &cc.Info
		ci.Side, ci.Service, ci.Method, ci.FullMethod, ci.Protocol, ci.Attempt, ci.Start = callinfo.Client, echoService, "Echo", "/"+echoName, "ttheader", 1, start
		if err := cli(cc, req, nil); (err != nil) != fail {
			b.Fatal(err)
		}
	}
}

// serverCall is a server's call record: its carrier and reply.
type serverCall struct {
	c     callinfo.Carrier
	reply endpoint.Reply
}

// tracedServerCall is serverCall with the room server.WithTracing gives.
type tracedServerCall struct {
	serverCall
	in   metadata.TraceRoom
	span trace.ServerRoom
}

// tracedClientCall is a client's call record with the room
// client.WithTracing gives.
type tracedClientCall struct {
	c    callinfo.Carrier
	span trace.ClientRoom
}

// BenchmarkCall is one echo over loopback with the middlewares on both
// sides, 50 callers per core, 1 KiB payloads (server's runParallel).
// cpu-ns/op is the process's CPU time per call.
func BenchmarkCall(b *testing.B) {
	for _, d := range designs {
		b.Run(d.name, func(b *testing.B) {
			var sopts []server.Option
			var copts []client.Option
			if d.build != nil {
				tr := d.build(b)
				sopts = append(sopts, server.WithTracing(tr))
				copts = append(copts, client.WithTracing(tr))
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			s := server.New(append(sopts, server.WithLogger(slog.New(slog.DiscardHandler)))...)
			echopb.RegisterEchoServiceServer(s, &echo.Service{ServedBy: ln.Addr().String()})
			go s.Serve(ln)
			defer s.Stop()
			c, err := client.New(ln.Addr().String(), copts...)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			cl := echopb.NewEchoServiceClient(c)
			req := &echopb.EchoRequest{Message: "bench", Payload: bytes.Repeat([]byte{'x'}, 1024)}
			b.ReportAllocs()
			b.SetParallelism(50)
			b.ResetTimer()
			cpu := loadgen.ProcessCPU()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if _, err := cl.Echo(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if cpu > 0 {
				// CPU time per call, both sides: what bounds QPS on a busy
				// machine, and steadier than ns/op when other work shares it.
				b.ReportMetric(float64(loadgen.ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}
