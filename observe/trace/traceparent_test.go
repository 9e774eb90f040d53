package trace

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	oteltrace "go.opentelemetry.io/otel/trace"
)

func TestParseTraceparent(t *testing.T) {
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, tc := range []struct {
		in    string
		err   error
		flags oteltrace.TraceFlags
	}{
		{"00-" + tid + "-" + sid + "-01", nil, oteltrace.FlagsSampled},
		{"00-" + tid + "-" + sid + "-00", nil, 0},
		{"00-" + tid + "-" + sid + "-03", nil, oteltrace.FlagsSampled | oteltrace.FlagsRandom},
		{"00-" + tid + "-" + sid + "-04", errTPVersion0, 0},
		{"00-" + tid + "-" + sid + "-01-extra", errTPVersion0, 0},
		{"01-" + tid + "-" + sid + "-09-extra", nil, oteltrace.FlagsSampled},
		{"01-" + tid + "-" + sid + "-01extra", errTPFormat, 0},
		{"ff-" + tid + "-" + sid + "-01", errTPVersion, 0},
		{"00-00000000000000000000000000000000-" + sid + "-01", errTPTraceID, 0},
		{"00-" + tid + "-0000000000000000-01", errTPSpanID, 0},
		{"00-" + tid + "-" + sid + "-0", errTPFormat, 0},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-" + sid + "-01", errTPFormat, 0},
		{"00_" + tid + "-" + sid + "-01", errTPFormat, 0},
		{"", errTPFormat, 0},
	} {
		_, _, flags, err := parseTraceparent(tc.in)
		if err != tc.err || (err == nil && flags != tc.flags) {
			t.Errorf("%q: flags %v err %v, want %v %v", tc.in, flags, err, tc.flags, tc.err)
		}
	}
}

// carrier is a one-header TextMapCarrier.
type carrier string

func (c carrier) Get(key string) string {
	if key == TraceparentKey {
		return string(c)
	}
	return ""
}
func (carrier) Set(string, string) {}
func (carrier) Keys() []string     { return []string{TraceparentKey} }

// FuzzTraceparent holds the parser to propagation.TraceContext: the same
// values are accepted with the same ids and flags, and what it accepts
// formats back as TraceContext injects it.
func FuzzTraceparent(f *testing.F) {
	for _, s := range []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff-x",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"fe-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		want := oteltrace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier(h)))
		tid, sid, flags, err := parseTraceparent(h)
		if (err == nil) != want.IsValid() {
			t.Fatalf("%q: parser err %v, TraceContext valid %v", h, err, want.IsValid())
		}
		if err != nil {
			return
		}
		if tid != want.TraceID() || sid != want.SpanID() || flags != want.TraceFlags() {
			t.Fatalf("%q: got %v %v %v, TraceContext %v %v %v", h, tid, sid, flags, want.TraceID(), want.SpanID(), want.TraceFlags())
		}
		sc := oteltrace.NewSpanContext(oteltrace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags})
		injected := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(oteltrace.ContextWithSpanContext(context.Background(), sc), injected)
		if got := formatTraceparent(&sc); got != injected[TraceparentKey] {
			t.Fatalf("format %q, TraceContext injects %q", got, injected[TraceparentKey])
		}
	})
}

// BenchmarkTraceparent prices what every traced call pays: the client
// formats a traceparent, the server parses it.
func BenchmarkTraceparent(b *testing.B) {
	const h = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			if _, _, _, err := parseTraceparent(h); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("format", func(b *testing.B) {
		tid, sid, flags, _ := parseTraceparent(h)
		sc := oteltrace.NewSpanContext(oteltrace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags})
		var buf [traceparentLen]byte
		for b.Loop() {
			putTraceparent(&buf, &sc)
		}
	})
}
