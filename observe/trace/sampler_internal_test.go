package trace

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

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
	tp, err := NewProvider(ProviderConfig{Sampler: SamplerConfig{Ratio: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Shutdown(context.Background())
	tr, err := New(Config{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	saved := spanKey
	defer func() { spanKey = saved }()
	for _, key := range []any{saved, nil} {
		spanKey = key
		type k struct{}
		parent := context.WithValue(context.Background(), k{}, "parent value")
		ctx, span := tr.start(parent, oteltrace.SpanContext{}, "pkg.Svc/M", tr.clientOpts)
		if span.IsRecording() || span.SpanContext().IsSampled() || !span.SpanContext().IsValid() {
			t.Errorf("key %v: span recording %v, sampled %v, valid %v", key, span.IsRecording(), span.SpanContext().IsSampled(), span.SpanContext().IsValid())
		}
		if span.TracerProvider() != oteltrace.TracerProvider(tp) {
			t.Errorf("key %v: TracerProvider %T, want the Provider", key, span.TracerProvider())
		}
		if oteltrace.SpanFromContext(ctx) != span || !oteltrace.SpanContextFromContext(ctx).Equal(span.SpanContext()) {
			t.Errorf("key %v: span not found in its context", key)
		}
		if ctx.Value(k{}) != "parent value" {
			t.Errorf("key %v: the parent's values are lost", key)
		}
		span.End() // a no-op, as on any non-recording span
	}
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
