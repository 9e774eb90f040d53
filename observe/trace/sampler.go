package trace

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// DefaultRatio is the fraction of new traces sampled when SamplerConfig.Ratio is zero.
const DefaultRatio = 0.01

// ErrorCaptureKey marks a span exported by error capture: its call failed
// and the sampler had not sampled it.
const ErrorCaptureKey = attribute.Key("sluice.trace.error_capture")

// SamplerConfig configures Sampler. The zero value samples 1% of new
// traces, follows the parent's decision otherwise, and forces no method.
type SamplerConfig struct {
	// Ratio is the fraction of new traces (spans without a parent) that are
	// sampled, decided on the trace id as sdktrace.TraceIDRatioBased does,
	// so every service and language decides alike (default DefaultRatio,
	// 1%). A negative Ratio samples no new trace: only Always methods and
	// error capture export spans. A Ratio of 1 or more samples every trace.
	Ratio float64
	// Always lists methods sampled on every call, whatever Ratio says and
	// even under a parent that was not sampled (so such a trace may start
	// at the forced method). A method is named "/pkg.Service/Method" or
	// "pkg.Service/Method" (default none).
	Always []string
}

// Validate reports a configuration Sampler would have to bend: a Ratio
// above 1 or not a number, a method name that is not pkg.Service/Method.
func (c SamplerConfig) Validate() error {
	if math.IsNaN(c.Ratio) || c.Ratio > 1 {
		return fmt.Errorf("trace: sampler Ratio %v: want a fraction between 0 and 1 (0: the default %v, negative: none)", c.Ratio, DefaultRatio)
	}
	for _, m := range c.Always {
		name := strings.TrimPrefix(m, "/")
		i := strings.LastIndexByte(name, '/')
		if i <= 0 || i == len(name)-1 || strings.Count(name, "/") != 1 {
			return fmt.Errorf("trace: sampler Always %q: want /pkg.Service/Method", m)
		}
	}
	return nil
}

// Sampler returns the Sluice sampler:
//
//   - a span whose parent was sampled is sampled; one whose parent was not
//     is not (parent-based, so a trace is kept or dropped as a whole);
//   - a span without a parent (a new trace) is sampled with probability
//     cfg.Ratio, decided on its trace id;
//   - a call to a method in cfg.Always is sampled in every case.
//
// Error capture is the fourth rule: a Tracing middleware whose call fails
// on a span this sampler dropped starts a replacement span with the same
// trace and span ids, which this sampler samples (see the package doc).
// The replacement has the dropped span's ids only when the provider's
// IDGenerator is IDGenerator(); NewProvider sets both.
//
// Sampler does not fail: a Ratio above 1 samples everything, NaN means the
// default; Validate rejects both.
func Sampler(cfg SamplerConfig) sdktrace.Sampler { return newSampler(cfg) }

func newSampler(cfg SamplerConfig) *sampler {
	ratio := cfg.Ratio
	switch {
	case ratio == 0 || math.IsNaN(ratio):
		ratio = DefaultRatio
	case ratio < 0:
		ratio = 0
	case ratio > 1:
		ratio = 1
	}
	s := &sampler{ratio: ratio, bound: uint64(ratio * (1 << 63))}
	for _, m := range cfg.Always {
		if s.always == nil {
			s.always = map[string]struct{}{}
		}
		s.always[strings.TrimPrefix(m, "/")] = struct{}{}
	}
	return s
}

type sampler struct {
	ratio  float64
	bound  uint64              // trace ids below it are sampled, as TraceIDRatioBased decides
	always map[string]struct{} // span names: "pkg.Service/Method"
}

var captured = []attribute.KeyValue{ErrorCaptureKey.Bool(true)}

func (s *sampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	psc := oteltrace.SpanContextFromContext(p.ParentContext)
	if c, ok := p.ParentContext.(*presetContext); ok {
		r := sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample, Tracestate: psc.TraceState()}
		if c.capture {
			r.Attributes = captured
		}
		return r
	}
	if s.sampled(psc.IsValid(), psc.IsSampled(), p.TraceID, p.Name) {
		return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample, Tracestate: psc.TraceState()}
	}
	return sdktrace.SamplingResult{Decision: sdktrace.Drop, Tracestate: psc.TraceState()}
}

// sampled is the decision for a span with trace id tid, under a parent
// that is valid or not, and sampled or not: the parent's, unless the
// method is forced; for a new trace, the ratio on the trace id (as
// sdktrace.TraceIDRatioBased computes it, so that every OpenTelemetry SDK
// decides alike).
func (s *sampler) sampled(parentValid, parentSampled bool, tid oteltrace.TraceID, name string) bool {
	if parentValid && parentSampled {
		return true
	}
	if s.always != nil {
		if _, ok := s.always[name]; ok {
			return true
		}
	}
	return !parentValid && binary.BigEndian.Uint64(tid[8:16])>>1 < s.bound
}

// spanIDs are a span's ids and trace flags: a span context without its
// trace state and the padding of an oteltrace.SpanContext.
type spanIDs struct {
	tid   oteltrace.TraceID
	sid   oteltrace.SpanID
	flags oteltrace.TraceFlags
}

// spanContext returns the span context of the ids with trace state ts.
func (ids *spanIDs) spanContext(ts oteltrace.TraceState) oteltrace.SpanContext {
	return oteltrace.NewSpanContext(oteltrace.SpanContextConfig{TraceID: ids.tid, SpanID: ids.sid, TraceFlags: ids.flags, TraceState: ts})
}

// draw draws the ids of a new span into ids and decides whether it is
// sampled, as the SDK would with this sampler and IDGenerator: the
// Tracing fast path, which never builds a span the sampler drops. parent
// holds the parent's ids and flags, nil for a new trace; the span's flags
// are the parent's with the sampled flag as decided.
func (s *sampler) draw(ids, parent *spanIDs, name string) (sampled bool) {
	if parent != nil {
		ids.tid, ids.flags = parent.tid, parent.flags
	} else {
		ids.tid, ids.flags = newTraceID(), 0
	}
	ids.sid = newSpanID()
	sampled = s.sampled(parent != nil, ids.flags.IsSampled(), ids.tid, name)
	if sampled {
		ids.flags |= oteltrace.FlagsSampled
	} else {
		ids.flags &^= oteltrace.FlagsSampled
	}
	return sampled
}

// decide is draw for a parent span context, returning the new span's:
// the span inherits the parent's trace state.
func (s *sampler) decide(parent oteltrace.SpanContext, name string) (oteltrace.SpanContext, bool) {
	var ids spanIDs
	sampled := s.draw(&ids, parentIDs(&parent), name)
	return ids.spanContext(parent.TraceState()), sampled
}

// parentIDs returns the ids of sc, nil when it is not valid.
func parentIDs(sc *oteltrace.SpanContext) *spanIDs {
	if !sc.IsValid() {
		return nil
	}
	return &spanIDs{tid: sc.TraceID(), sid: sc.SpanID(), flags: sc.TraceFlags()}
}

func (s *sampler) Description() string {
	names := make([]string, 0, len(s.always))
	for n := range s.always {
		names = append(names, n)
	}
	sort.Strings(names)
	return fmt.Sprintf("SluiceSampler{ratio:%g,always:[%s],parentBased,errorCapture}", s.ratio, strings.Join(names, " "))
}

// presetContext is the parent context of a span whose ids and sampling
// are already decided: an error-capture span (capture), which replays a
// span the sampler dropped, or a sampled span of the Tracing fast path.
// The sampler and the ID generator recognise it by its type, so the
// common path pays no context lookup for it.
type presetContext struct {
	context.Context
	sc      oteltrace.SpanContext
	capture bool
}

// IDGenerator returns the ID generator error capture needs: random ids,
// as the SDK's default generator makes, except for an error-capture span,
// which gets the ids of the span it replaces so that the spans of the
// services it called still point at it (and a sampled span of the
// Tracing fast path, which gets the ids its sampling was decided on).
func IDGenerator() sdktrace.IDGenerator { return idGenerator{} }

type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (oteltrace.TraceID, oteltrace.SpanID) {
	if c, ok := ctx.(*presetContext); ok {
		return c.sc.TraceID(), c.sc.SpanID()
	}
	return newTraceID(), newSpanID()
}

func (idGenerator) NewSpanID(ctx context.Context, _ oteltrace.TraceID) oteltrace.SpanID {
	if c, ok := ctx.(*presetContext); ok {
		return c.sc.SpanID()
	}
	return newSpanID()
}

func newTraceID() oteltrace.TraceID {
	var tid oteltrace.TraceID
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid
}

func newSpanID() oteltrace.SpanID {
	var sid oteltrace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}
