package trace_test

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sluicerpc/sluice/observe/trace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// rootDecisions counts how many of n new traces s samples, over trace ids
// from a seeded generator.
func rootDecisions(s sdktrace.Sampler, name string, n int) int {
	rng := rand.New(rand.NewPCG(1, 2))
	sampled := 0
	for range n {
		var tid oteltrace.TraceID
		binary.BigEndian.PutUint64(tid[:8], rng.Uint64())
		binary.BigEndian.PutUint64(tid[8:], rng.Uint64())
		r := s.ShouldSample(sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: tid, Name: name, Kind: oteltrace.SpanKindClient})
		if r.Decision == sdktrace.RecordAndSample {
			sampled++
		}
	}
	return sampled
}

// TestSamplerRatio: 10,000 root decisions land within four standard
// deviations of the ratio.
func TestSamplerRatio(t *testing.T) {
	const n = 10000
	for _, tc := range []struct {
		cfg  float64
		want float64
	}{
		{0, 0.01}, // the default
		{0.01, 0.01},
		{0.1, 0.1},
		{0.5, 0.5},
		{1, 1},
		{-1, 0},
	} {
		got := rootDecisions(trace.Sampler(trace.SamplerConfig{Ratio: tc.cfg}), "pkg.Svc/M", n)
		mean := tc.want * n
		tol := 4 * math.Sqrt(n*tc.want*(1-tc.want))
		if math.Abs(float64(got)-mean) > tol {
			t.Errorf("Ratio %v: %d of %d sampled, want %v ± %.0f", tc.cfg, got, n, mean, tol)
		}
	}
}

// TestSamplerParent: children follow their parent's decision, local or
// remote; forced methods are sampled in every case.
func TestSamplerParent(t *testing.T) {
	s := trace.Sampler(trace.SamplerConfig{Ratio: -1, Always: []string{"/pkg.Svc/Forced", "pkg.Svc/Also"}})
	parent := func(sampled, remote bool) context.Context {
		var flags oteltrace.TraceFlags
		if sampled {
			flags = oteltrace.FlagsSampled
		}
		ts, _ := oteltrace.ParseTraceState("k=v")
		sc := oteltrace.NewSpanContext(oteltrace.SpanContextConfig{
			TraceID: oteltrace.TraceID{1}, SpanID: oteltrace.SpanID{2}, TraceFlags: flags, Remote: remote, TraceState: ts,
		})
		return oteltrace.ContextWithSpanContext(context.Background(), sc)
	}
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		method  string
		sampled bool
	}{
		{"remote sampled", parent(true, true), "pkg.Svc/M", true},
		{"remote unsampled", parent(false, true), "pkg.Svc/M", false},
		{"local sampled", parent(true, false), "pkg.Svc/M", true},
		{"local unsampled", parent(false, false), "pkg.Svc/M", false},
		{"root", context.Background(), "pkg.Svc/M", false},
		{"forced root", context.Background(), "pkg.Svc/Forced", true},
		{"forced without slash", context.Background(), "pkg.Svc/Also", true},
		{"forced under unsampled", parent(false, true), "pkg.Svc/Forced", true},
	} {
		r := s.ShouldSample(sdktrace.SamplingParameters{ParentContext: tc.ctx, TraceID: oteltrace.TraceID{1}, Name: tc.method})
		if got := r.Decision == sdktrace.RecordAndSample; got != tc.sampled {
			t.Errorf("%s: decision %v, want sampled %v", tc.name, r.Decision, tc.sampled)
		}
		if r.Decision == sdktrace.RecordOnly {
			t.Errorf("%s: RecordOnly; the sampler only samples or drops", tc.name)
		}
		if want := oteltrace.SpanContextFromContext(tc.ctx).TraceState().String(); r.Tracestate.String() != want {
			t.Errorf("%s: tracestate %q, want the parent's %q", tc.name, r.Tracestate.String(), want)
		}
	}
	if d := s.Description(); d == "" {
		t.Error("empty description")
	}
}

// TestIDGenerator: ids are valid and differ.
func TestIDGenerator(t *testing.T) {
	g := trace.IDGenerator()
	seen := map[oteltrace.SpanID]bool{}
	for range 1000 {
		tid, sid := g.NewIDs(context.Background())
		sid2 := g.NewSpanID(context.Background(), tid)
		if !tid.IsValid() || !sid.IsValid() || !sid2.IsValid() {
			t.Fatal("invalid id")
		}
		if seen[sid] || seen[sid2] {
			t.Fatal("repeated span id")
		}
		seen[sid], seen[sid2] = true, true
	}
}
