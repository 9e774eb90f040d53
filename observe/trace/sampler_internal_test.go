package trace

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/metadata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// TestDecideMatchesShouldSample: the fast path's decision is the one the
// SDK reaches through ShouldSample, for any parent, trace id and method.
func TestDecideMatchesShouldSample(t *testing.T) {
	s := newSampler(SamplerConfig{Ratio: 0.3, Always: []string{"/pkg.Svc/Forced"}})
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 10000 {
		var parent oteltrace.SpanContext
		if rng.IntN(3) > 0 {
			var scc oteltrace.SpanContextConfig
			binary.BigEndian.PutUint64(scc.TraceID[:8], rng.Uint64())
			binary.BigEndian.PutUint64(scc.TraceID[8:], rng.Uint64())
			binary.BigEndian.PutUint64(scc.SpanID[:], rng.Uint64())
			scc.TraceFlags = oteltrace.TraceFlags(rng.IntN(4))
			scc.Remote = rng.IntN(2) == 0
			parent = oteltrace.NewSpanContext(scc)
		}
		name := "pkg.Svc/M"
		if i%7 == 0 {
			name = "pkg.Svc/Forced"
		}
		sc, sampled := s.decide(parent, name)
		r := s.ShouldSample(sdktrace.SamplingParameters{
			ParentContext: oteltrace.ContextWithSpanContext(context.Background(), parent),
			TraceID:       sc.TraceID(),
			Name:          name,
		})
		if sampled != (r.Decision == sdktrace.RecordAndSample) || sampled != sc.IsSampled() {
			t.Fatalf("parent %v %v name %s: decide sampled %v (flags %v), ShouldSample %v", parent.TraceID(), parent.TraceFlags(), name, sampled, sc.TraceFlags(), r.Decision)
		}
		if parent.IsValid() && (sc.TraceID() != parent.TraceID() || sc.TraceFlags()&oteltrace.FlagsRandom != parent.TraceFlags()&oteltrace.FlagsRandom) {
			t.Fatalf("child %v of %v: trace id or random flag not inherited", sc, parent)
		}
		if !sc.IsValid() || sc.SpanID() == parent.SpanID() {
			t.Fatalf("decide made span context %v under %v", sc, parent)
		}
	}
}

// TestUnsampledSpan: a span the fast path drops answers like the SDK's
// non-recording span, with the provider it came from, and is found in its
// context by otel's own lookup, with the one-allocation context and
// without it.
func TestUnsampledSpan(t *testing.T) {
	if spanKey == nil {
		t.Error("probeSpanKey found no key: the fast path makes two allocations per span")
	}
	tp, tr := newTracing(t, ProviderConfig{Sampler: SamplerConfig{Ratio: -1}})
	saved := spanKey
	defer func() { spanKey = saved }()
	begins := map[string]func(*call, context.Context) context.Context{
		"client": tr.beginClient,
		"server": func(c *call, ctx context.Context) context.Context {
			return tr.beginServer(c, ctx, new(atomic.Pointer[namedMethod]))
		},
	}
	for _, key := range []any{saved, nil} {
		spanKey = key
		for side, begin := range begins {
			type k struct{}
			parent := &callinfo.Carrier{Context: context.WithValue(context.Background(), k{}, "parent value")}
			parent.Info = callinfo.Info{Service: "pkg.Svc", Method: "M", FullMethod: "/pkg.Svc/M", Attempt: 1, Start: time.Now()}
			var c call
			ctx := begin(&c, parent)
			span := c.span
			if span.IsRecording() || c.recording || span.SpanContext().IsSampled() || !span.SpanContext().IsValid() {
				t.Errorf("key %v, %s: span recording %v, sampled %v, valid %v", key, side, span.IsRecording(), span.SpanContext().IsSampled(), span.SpanContext().IsValid())
			}
			if span.TracerProvider() != oteltrace.TracerProvider(tp) {
				t.Errorf("key %v, %s: TracerProvider %T, want the Provider", key, side, span.TracerProvider())
			}
			if oteltrace.SpanFromContext(ctx) != span || !oteltrace.SpanContextFromContext(ctx).Equal(span.SpanContext()) {
				t.Errorf("key %v, %s: span not found in its context", key, side)
			}
			if ctx.Value(k{}) != "parent value" {
				t.Errorf("key %v, %s: the parent's values are lost", key, side)
			}
			sc := span.SpanContext()
			if tc := parent.Info.Trace; side == "client" && (tc == nil || tc.Traceparent != formatTraceparent(&sc)) {
				t.Errorf("key %v: call info's trace context %v, want the span's", key, tc)
			}
			var err error
			c.returned = true
			tr.finish(&c, &err)
			span.End() // a no-op, as on any non-recording span
		}
	}
}

// TestUnsampledSpanInherits: a span the fast path drops under an
// unsampled parent keeps the parent's trace id, random flag and
// tracestate, on the client (whose span context lives in the traceparent
// it sends) and on the server (whose parent arrives in the metadata).
func TestUnsampledSpanInherits(t *testing.T) {
	_, tr := newTracing(t, ProviderConfig{})
	ts, err := oteltrace.ParseTraceState("vendor=abc,other=1")
	if err != nil {
		t.Fatal(err)
	}
	parent := oteltrace.NewSpanContext(oteltrace.SpanContextConfig{
		TraceID: oteltrace.TraceID{0xaa, 15: 1}, SpanID: oteltrace.SpanID{0xbb, 7: 1},
		TraceFlags: oteltrace.FlagsRandom, TraceState: ts, Remote: true,
	})
	check := func(side string, got oteltrace.SpanContext) {
		t.Helper()
		if got.TraceID() != parent.TraceID() || got.SpanID() == parent.SpanID() || !got.SpanID().IsValid() ||
			got.TraceFlags() != oteltrace.FlagsRandom || got.IsRemote() || got.TraceState().String() != ts.String() {
			t.Errorf("%s: span context %v (tracestate %q) under %v (tracestate %q)", side, got, got.TraceState(), parent, ts)
		}
	}

	cc := &callinfo.Carrier{Context: oteltrace.ContextWithSpanContext(context.Background(), parent)}
	cc.Info = callinfo.Info{Service: "pkg.Svc", Method: "M", FullMethod: "/pkg.Svc/M", Attempt: 1, Start: time.Now()}
	var c call
	ctx := tr.beginClient(&c, cc)
	check("client", oteltrace.SpanContextFromContext(ctx))
	sc := c.span.SpanContext()
	if tc := cc.Info.Trace; tc == nil || tc.Traceparent != formatTraceparent(&sc) || tc.Tracestate != ts.String() {
		t.Errorf("client: call info's trace context %+v, want the span's", tc)
	}

	sc2 := &callinfo.Carrier{Context: metadata.NewIncomingContextWithTrace(context.Background(), nil, formatTraceparent(&parent), ts.String())}
	sc2.Info = callinfo.Info{Side: callinfo.Server, Service: "pkg.Svc", Method: "M", Attempt: 1, Start: time.Now()}
	ctx = tr.beginServer(&c, sc2, new(atomic.Pointer[namedMethod]))
	check("server", oteltrace.SpanContextFromContext(ctx))
}

// TestCaptureLimit: at most perSecond captures per second of the clock.
func TestCaptureLimit(t *testing.T) {
	now := time.Unix(1000, 0)
	l := captureLimit{perSecond: 3, clock: func() time.Time { return now }}
	count := func(n int) (ok int) {
		for range n {
			if l.allow() {
				ok++
			}
		}
		return ok
	}
	if got := count(10); got != 3 {
		t.Errorf("first second: %d allowed, want 3", got)
	}
	now = now.Add(999 * time.Millisecond)
	if got := count(10); got != 0 {
		t.Errorf("same second: %d allowed, want 0", got)
	}
	now = now.Add(time.Millisecond)
	if got := count(10); got != 3 {
		t.Errorf("next second: %d allowed, want 3", got)
	}
	unlimited := captureLimit{perSecond: -1, clock: func() time.Time { return now }}
	for range 1000 {
		if !unlimited.allow() {
			t.Fatal("negative rate refused a capture")
		}
	}
}

// TestCaptureRateDefault: the zero Config bounds error capture.
func TestCaptureRateDefault(t *testing.T) {
	for _, tc := range []struct{ cfg, want int }{{0, DefaultErrorCaptureRate}, {5, 5}, {-1, -1}} {
		tr, err := New(Config{ErrorCaptureRate: tc.cfg})
		if err != nil {
			t.Fatal(err)
		}
		if tr.limit.perSecond != int64(tc.want) {
			t.Errorf("ErrorCaptureRate %d: limit %d, want %d", tc.cfg, tr.limit.perSecond, tc.want)
		}
	}
}

// newTracing returns a provider made with cfg, which the test's cleanup
// shuts down, and a Tracing on it.
func newTracing(t *testing.T, cfg ProviderConfig) (*Provider, *Tracing) {
	t.Helper()
	tp, err := NewProvider(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tr, err := New(Config{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	return tp, tr
}
