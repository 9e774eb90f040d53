package trace

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
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

// TestHexWords: the word-at-a-time hex decoder agrees with the table one
// on every byte value in every position, and the encoder with
// encoding/hex.
func TestHexWords(t *testing.T) {
	const valid = "0123456789abcdef"
	for pos := range 16 {
		for c := range 256 {
			b := []byte(valid)
			b[pos] = byte(c)
			var want, got [8]byte
			wantOK := unhex(want[:], string(b))
			lo, ok1 := unhexWord(load64(string(b[:8])))
			hi, ok2 := unhexWord(load64(string(b[8:])))
			binary.LittleEndian.PutUint32(got[:], lo)
			binary.LittleEndian.PutUint32(got[4:], hi)
			if gotOK := ok1 && ok2; wantOK != gotOK || (wantOK && want != got) {
				t.Fatalf("%q: unhexWord %x %v, unhex %x %v", b, got, gotOK, want, wantOK)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	// Several bad bytes at once, around the edges of the ranges.
	const edges = "0123456789abcdef/:`gAF\x00\x7f\x80\xb0\xe1\xff"
	for range 100000 {
		var b [8]byte
		for i := range b {
			if rng.IntN(4) == 0 {
				b[i] = edges[rng.IntN(len(edges))]
			} else {
				b[i] = valid[rng.IntN(len(valid))]
			}
		}
		var want [4]byte
		wantOK := unhex(want[:], string(b[:]))
		got, gotOK := unhexWord(load64(string(b[:])))
		if wantOK != gotOK || (wantOK && binary.LittleEndian.Uint32(want[:]) != got) {
			t.Fatalf("%q: unhexWord %x %v, unhex %x %v", b, got, gotOK, want, wantOK)
		}
	}
	for range 1000 {
		var src [16]byte
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		var dst [32]byte
		putHexWords(dst[:], src[:])
		if string(dst[:]) != hex.EncodeToString(src[:]) {
			t.Fatalf("putHexWords(%x) = %q", src, dst)
		}
		for i := 0; i < len(dst); i += 8 {
			w, ok := unhexWord(load64(string(dst[i : i+8])))
			if want := binary.LittleEndian.Uint32(src[i/2:]); !ok || w != want {
				t.Fatalf("unhexWord(%q) = %x %v, want %x", dst[i:i+8], w, ok, want)
			}
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
		var ids spanIDs
		ids.tid, ids.sid, ids.flags, _ = parseTraceparent(h)
		var buf [traceparentLen]byte
		for b.Loop() {
			putTraceparent(&buf, &ids)
		}
	})
}
