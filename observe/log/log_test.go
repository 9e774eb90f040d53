package log_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/metadata"
	obslog "github.com/sluicerpc/sluice/observe/log"
	"github.com/sluicerpc/sluice/observe/trace"
	"github.com/sluicerpc/sluice/server"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer the server and client goroutines share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines parses every JSON line written so far.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// start serves echo (failing every call when fail is set) with tracing
// and an access log on both sides, and returns a client and the two logs.
func start(t *testing.T, protocol client.Protocol, fail bool) (echopb.EchoServiceClient, *syncBuffer, *syncBuffer) {
	t.Helper()
	tp, err := trace.NewProvider(trace.ProviderConfig{Sampler: trace.SamplerConfig{Ratio: -1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tr, err := trace.New(trace.Config{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	var srvLog, clog syncBuffer
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rate := 0.0
	if fail {
		rate = 1
	}
	s := server.New(
		server.WithLogger(slog.New(slog.DiscardHandler)),
		server.WithMiddleware(tr.Server(), obslog.AccessLog(slog.New(slog.NewJSONHandler(&srvLog, nil)))),
	)
	echopb.RegisterEchoServiceServer(s, &echo.Service{FailRate: rate})
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	c, err := client.New(ln.Addr().String(), client.WithProtocol(protocol),
		client.WithMiddleware(tr.Client(), obslog.AccessLog(slog.New(slog.NewJSONHandler(&clog, nil)))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return echopb.NewEchoServiceClient(c), &srvLog, &clog
}

func TestAccessLog(t *testing.T) {
	for _, p := range []client.Protocol{client.Native, client.GRPC, client.Connect} {
		for _, fail := range []bool{false, true} {
			name := p.String() + map[bool]string{false: "/ok", true: "/fail"}[fail]
			t.Run(name, func(t *testing.T) {
				echoc, slogs, clogs := start(t, p, fail)
				for range 3 {
					echoc.Echo(context.Background(), &echopb.EchoRequest{Message: "hi"})
				}
				sl, cl := slogs.lines(t), clogs.lines(t)
				if len(sl) != 3 || len(cl) != 3 {
					t.Fatalf("%d server and %d client lines, want one per call (3)", len(sl), len(cl))
				}
				wantCode := "OK"
				if fail {
					wantCode = "Unavailable"
				}
				for i := range sl {
					for side, l := range map[string]map[string]any{"server": sl[i], "client": cl[i]} {
						want := map[string]any{
							"level": "INFO", "msg": obslog.AccessMessage, "side": side,
							"service": "sluice.examples.echo.v1.EchoService", "method": "Echo",
							"code": wantCode, "protocol": p.String(),
						}
						for k, w := range want {
							if l[k] != w {
								t.Errorf("%s line %d: %s = %v, want %v", side, i, k, l[k], w)
							}
						}
						if d, ok := l["duration"].(float64); !ok || d <= 0 {
							t.Errorf("%s line %d: duration %v, want nanoseconds > 0", side, i, l["duration"])
						}
						if peer, _ := l["peer"].(string); !strings.HasPrefix(peer, "127.0.0.1:") {
							t.Errorf("%s line %d: peer %v", side, i, l["peer"])
						}
						if msg, _ := l["error"].(string); fail != strings.Contains(msg, "injected failure") {
							t.Errorf("%s line %d: error %q", side, i, msg)
						}
						for k, n := range map[string]int{obslog.TraceIDKey: 32, obslog.SpanIDKey: 16} {
							if v, _ := l[k].(string); len(v) != n {
								t.Errorf("%s line %d: %s %q, want %d hex digits", side, i, k, v, n)
							}
						}
					}
					// One trace, two spans: the server's span is not the client's.
					if sl[i][obslog.TraceIDKey] != cl[i][obslog.TraceIDKey] {
						t.Errorf("call %d: server trace %v, client trace %v", i, sl[i][obslog.TraceIDKey], cl[i][obslog.TraceIDKey])
					}
					if sl[i][obslog.SpanIDKey] == cl[i][obslog.SpanIDKey] {
						t.Errorf("call %d: server and client log the same span", i)
					}
				}
			})
		}
	}
}

// call runs mw around an endpoint returning err, in a call context.
func call(mw endpoint.Middleware, ctx context.Context, err error) {
	cc := &callinfo.Carrier{Context: ctx, Info: callinfo.Info{
		Side: callinfo.Server, Service: "pkg.Svc", Method: "Get", Protocol: "ttheader", Caller: "front", Attempt: 2,
	}}
	mw(func(context.Context, any, any) error { return err })(cc, nil, &endpoint.Reply{})
}

// TestAccessLogFields: caller and attempt appear when set; trace fields
// only with a span; nothing at all when Info is disabled or outside a call.
func TestAccessLogFields(t *testing.T) {
	var buf syncBuffer
	l := slog.New(slog.NewJSONHandler(&buf, nil))
	call(obslog.AccessLog(l), context.Background(), nil)
	lines := buf.lines(t)
	if len(lines) != 1 {
		t.Fatalf("%d lines", len(lines))
	}
	if lines[0]["caller"] != "front" || lines[0]["attempt"] != 2.0 {
		t.Errorf("caller %v attempt %v", lines[0]["caller"], lines[0]["attempt"])
	}
	if _, ok := lines[0][obslog.TraceIDKey]; ok {
		t.Error("trace_id without a span")
	}
	if _, ok := lines[0]["peer"]; ok {
		t.Error("empty peer logged")
	}

	var quiet syncBuffer
	warn := slog.New(slog.NewJSONHandler(&quiet, &slog.HandlerOptions{Level: slog.LevelWarn}))
	call(obslog.AccessLog(warn), context.Background(), nil)
	obslog.AccessLog(l)(func(context.Context, any, any) error { return nil })(context.Background(), nil, nil)
	call(obslog.AccessLog(nil), context.Background(), nil)
	if n := len(quiet.lines(t)); n != 0 {
		t.Errorf("%d lines at level Warn", n)
	}
	if n := len(buf.lines(t)); n != 1 {
		t.Errorf("%d lines after calls that log nothing, want still 1", n)
	}
}

var spanCtx = oteltrace.ContextWithSpanContext(context.Background(), oteltrace.NewSpanContext(oteltrace.SpanContextConfig{
	TraceID: oteltrace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
	SpanID:  oteltrace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
}))

const (
	wantTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	wantSpan  = "00f067aa0ba902b7"
)

func TestHandler(t *testing.T) {
	var buf syncBuffer
	h := obslog.Handler(slog.NewJSONHandler(&buf, nil))
	if obslog.Handler(h) != h {
		t.Error("Handler wrapped twice")
	}
	l := slog.New(h).With("component", "test")
	l.InfoContext(spanCtx, "with span")
	l.InfoContext(context.Background(), "without span")
	l.Info("no context")
	l.InfoContext(spanCtx, "own trace", obslog.TraceIDKey, "mine")
	l.WithGroup("g").InfoContext(spanCtx, "grouped", "k", "v")
	// The access log on a wrapped handler: trace fields once.
	call(obslog.AccessLog(slog.New(h)), spanCtx, nil)

	lines := buf.lines(t)
	if len(lines) != 6 {
		t.Fatalf("%d lines, want 6", len(lines))
	}
	check := func(i int, trace, span any) {
		t.Helper()
		if lines[i][obslog.TraceIDKey] != trace || lines[i][obslog.SpanIDKey] != span {
			t.Errorf("line %d (%v): trace %v span %v, want %v %v", i, lines[i]["msg"], lines[i][obslog.TraceIDKey], lines[i][obslog.SpanIDKey], trace, span)
		}
		if lines[i]["component"] != "test" && i < 5 {
			t.Errorf("line %d lost the logger's attributes", i)
		}
	}
	check(0, wantTrace, wantSpan)
	check(1, nil, nil)
	check(2, nil, nil)
	check(3, "mine", nil)
	if g, _ := lines[4]["g"].(map[string]any); g == nil || g[obslog.TraceIDKey] != wantTrace {
		t.Errorf("grouped line: %v, want the trace fields in group g", lines[4])
	}
	check(5, wantTrace, wantSpan)
	buf.mu.Lock()
	last := strings.Split(strings.TrimSpace(buf.b.String()), "\n")[5]
	buf.mu.Unlock()
	if n := strings.Count(last, `"`+obslog.TraceIDKey+`"`); n != 1 {
		t.Errorf("access line on a wrapped handler has trace_id %d times: %s", n, last)
	}
}

// TestHandlerIncomingTrace: a server call's context without a span gives
// the trace of the traceparent it arrived with, the caller's span as
// parent_span_id; a malformed traceparent gives nothing.
func TestHandlerIncomingTrace(t *testing.T) {
	var buf syncBuffer
	l := slog.New(obslog.Handler(slog.NewJSONHandler(&buf, nil)))
	in := func(tp string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs(metadata.KeyTraceparent, tp))
	}
	l.InfoContext(in("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"), "incoming")
	l.InfoContext(in("00-4bf92f3577b34da6a3ce929d0e0e4736-zzzz"), "malformed")
	lines := buf.lines(t)
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	if lines[0][obslog.TraceIDKey] != "4bf92f3577b34da6a3ce929d0e0e4736" || lines[0][obslog.ParentSpanIDKey] != "00f067aa0ba902b7" || lines[0][obslog.SpanIDKey] != nil {
		t.Errorf("incoming: %v", lines[0])
	}
	if lines[1][obslog.TraceIDKey] != nil || lines[1][obslog.ParentSpanIDKey] != nil {
		t.Errorf("malformed: %v", lines[1])
	}
}
