package metadata_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/sluicerpc/sluice/metadata"
)

func Example() {
	ctx := metadata.AppendToOutgoing(context.Background(), "X-Tenant", "acme")
	md, _ := metadata.FromOutgoing(ctx)
	fmt.Println(md.Get("x-tenant"))
	// Output: [acme]
}

func TestOutgoingDoesNotShareState(t *testing.T) {
	base := metadata.Pairs("k", "v1")
	ctx := metadata.NewOutgoingContext(context.Background(), base)
	a := metadata.AppendToOutgoing(ctx, "k", "a")
	b := metadata.AppendToOutgoing(ctx, "k", "b")
	mdA, _ := metadata.FromOutgoing(a)
	mdB, _ := metadata.FromOutgoing(b)
	if !reflect.DeepEqual(mdA.Get("k"), []string{"v1", "a"}) || !reflect.DeepEqual(mdB.Get("k"), []string{"v1", "b"}) {
		t.Fatalf("siblings share state: %v %v", mdA, mdB)
	}
	mdA.Set("k", "changed")
	if got := base.Get("k"); !reflect.DeepEqual(got, []string{"v1"}) {
		t.Fatalf("caller's MD changed: %v", got)
	}
}

type pairs [][2]string

func (p *pairs) AddString(k, v string) { *p = append(*p, [2]string{k, v}) }

func TestRangeOutgoing(t *testing.T) {
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("A", "1"))
	ctx = metadata.AppendToOutgoing(ctx, "B", "2")
	var got pairs
	metadata.RangeOutgoing(ctx, &got)
	if !reflect.DeepEqual(got, pairs{{"a", "1"}, {"b", "2"}}) {
		t.Fatalf("got %v", got)
	}
	got = nil
	metadata.RangeOutgoing(context.Background(), &got)
	if got != nil {
		t.Fatalf("no metadata gave %v", got)
	}
}

func TestMDHelpers(t *testing.T) {
	md := metadata.New(map[string]string{"Key": "v"})
	md.Append("KEY", "w")
	if md.Value("key") != "v" || md.Len() != 1 || len(md.Get("Key")) != 2 {
		t.Fatalf("md = %v", md)
	}
	md.Delete("key")
	if md.Len() != 0 {
		t.Fatalf("delete left %v", md)
	}
	j := metadata.Join(metadata.Pairs("a", "1"), metadata.Pairs("a", "2", "b", "3"))
	if !reflect.DeepEqual(j, metadata.MD{"a": {"1", "2"}, "b": {"3"}}) {
		t.Fatalf("join = %v", j)
	}
	defer func() {
		if recover() == nil {
			t.Error("Pairs with an odd count did not panic")
		}
	}()
	metadata.Pairs("odd")
}

func TestOutgoingValue(t *testing.T) {
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("a", "1"))
	ctx = metadata.AppendToOutgoing(ctx, "B", "2", "a", "3")
	for _, tc := range []struct {
		key, want string
		ok        bool
	}{{"a", "1", true}, {"b", "2", true}, {"B", "2", true}, {"c", "", false}} {
		if got, ok := metadata.OutgoingValue(ctx, tc.key); got != tc.want || ok != tc.ok {
			t.Errorf("OutgoingValue(%q) = %q, %v", tc.key, got, ok)
		}
	}
	if _, ok := metadata.OutgoingValue(context.Background(), "a"); ok {
		t.Error("empty context has a value")
	}
	if n := testing.AllocsPerRun(100, func() { metadata.OutgoingValue(ctx, "b") }); n != 0 {
		t.Errorf("OutgoingValue allocates %v times", n)
	}
}

// TestIncomingWithTrace: trace context kept apart from the MD is incoming
// metadata all the same, listed first under its keys, and the MD a server
// passes is not changed.
func TestIncomingWithTrace(t *testing.T) {
	const tp, ts = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "congo=t61rcWkgMzE"
	for _, tc := range []struct {
		name   string
		md     metadata.MD
		tp, ts string
		want   metadata.MD
	}{
		{"trace only", nil, tp, ts, metadata.MD{"traceparent": {tp}, "tracestate": {ts}}},
		{"traceparent only", nil, tp, "", metadata.MD{"traceparent": {tp}}},
		{"tracestate only", nil, "", ts, metadata.MD{"tracestate": {ts}}},
		{"longer traceparent", nil, tp + "-more", "", metadata.MD{"traceparent": {tp + "-more"}}},
		{"trace context in the MD", metadata.MD{"traceparent": {tp}, "tracestate": {ts}}, "", "",
			metadata.MD{"traceparent": {tp}, "tracestate": {ts}}},
		{"with other keys", metadata.MD{"x-tenant": {"acme"}}, tp, ts,
			metadata.MD{"x-tenant": {"acme"}, "traceparent": {tp}, "tracestate": {ts}}},
		{"further values stay after", metadata.MD{"traceparent": {"second"}}, tp, "",
			metadata.MD{"traceparent": {tp, "second"}}},
		{"no trace context", metadata.MD{"x-tenant": {"acme"}}, "", "", metadata.MD{"x-tenant": {"acme"}}},
	} {
		for _, room := range []bool{false, true} {
			name := tc.name
			if room {
				name += " in a room"
			}
			t.Run(name, func(t *testing.T) {
				before := tc.md.Copy()
				var ctx context.Context
				if room {
					ctx = metadata.NewIncomingContextIn(&metadata.TraceRoom{}, context.Background(), tc.md, tc.tp, tc.ts)
				} else {
					ctx = metadata.NewIncomingContextWithTrace(context.Background(), tc.md, tc.tp, tc.ts)
				}
				got, ok := metadata.FromIncoming(ctx)
				if !ok || !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("FromIncoming = %v, %v; want %v", got, ok, tc.want)
				}
				if again, _ := metadata.FromIncoming(ctx); reflect.ValueOf(again).Pointer() != reflect.ValueOf(got).Pointer() {
					t.Error("FromIncoming made a second MD")
				}
				for k, vs := range tc.want {
					if v, ok := metadata.IncomingValue(ctx, strings.ToUpper(k)); !ok || v != vs[0] {
						t.Errorf("IncomingValue(%s) = %q, %v; want %q", k, v, ok, vs[0])
					}
				}
				if gotTP, gotTS := metadata.IncomingTraceContext(ctx); gotTP != tc.want.Value(metadata.KeyTraceparent) || gotTS != tc.want.Value(metadata.KeyTracestate) {
					t.Errorf("IncomingTraceContext = %q, %q; want %q, %q", gotTP, gotTS, tc.want.Value(metadata.KeyTraceparent), tc.want.Value(metadata.KeyTracestate))
				}
				if v, ok := metadata.IncomingValue(ctx, "x-absent"); ok || v != "" {
					t.Errorf("IncomingValue(x-absent) = %q, %v", v, ok)
				}
				if !reflect.DeepEqual(tc.md.Copy(), before) {
					t.Errorf("md changed: %v, was %v", tc.md, before)
				}
				if n := testing.AllocsPerRun(100, func() {
					metadata.IncomingValue(ctx, metadata.KeyTraceparent)
					metadata.IncomingTraceContext(ctx)
				}); n != 0 {
					t.Errorf("IncomingValue and IncomingTraceContext allocate %v times", n)
				}
			})
		}
	}
}

// TestTraceRoom: the context of a call that carried a traceparent only is
// made in the room, without an allocation; without a room it takes one.
func TestTraceRoom(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	const runs = 100
	for _, room := range []bool{true, false} {
		rooms := make([]metadata.TraceRoom, runs+1) // AllocsPerRun calls once more
		n := 0
		var ctx context.Context
		allocs := testing.AllocsPerRun(runs, func() {
			var r *metadata.TraceRoom
			if room {
				r = &rooms[n]
			}
			n++
			ctx = metadata.NewIncomingContextIn(r, context.Background(), nil, tp, "")
		})
		if want := map[bool]float64{true: 0, false: 1}[room]; allocs != want {
			t.Errorf("room %v: %v allocations, want %v", room, allocs, want)
		}
		if got, _ := metadata.IncomingTraceContext(ctx); got != tp {
			t.Errorf("room %v: traceparent %q, want %q", room, got, tp)
		}
	}
}

// TestIncomingWithTraceChain: persistent keys and baggage in the MD go on
// down the chain as NewIncomingContext sends them; the trace context, which
// is transient, does not.
func TestIncomingWithTraceChain(t *testing.T) {
	md := metadata.MD{"rpc-persist-x-tenant": {"acme"}, metadata.KeyBaggage: {"lane=canary"}}
	ctx := metadata.NewIncomingContextWithTrace(context.Background(), md, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "")
	if v, _ := metadata.PersistentValue(ctx, "x-tenant"); v != "acme" {
		t.Errorf("persistent x-tenant = %q", v)
	}
	if v, _ := metadata.BaggageValue(ctx, "lane"); v != "canary" {
		t.Errorf("baggage lane = %q", v)
	}
	if _, ok := metadata.OutgoingValue(ctx, metadata.KeyTraceparent); ok {
		t.Error("the incoming traceparent goes on to the next call")
	}
}

// TestIncomingWithTraceConcurrent: handlers may read the incoming metadata
// from several goroutines; they all get the same MD (run with -race).
func TestIncomingWithTraceConcurrent(t *testing.T) {
	for _, tc := range []struct {
		md metadata.MD
		ts string
	}{{metadata.MD{"a": {"1"}}, "ts"}, {nil, "ts"}, {nil, ""}} {
		in := tc.md
		ctx := metadata.NewIncomingContextWithTrace(context.Background(), in, "tp", tc.ts)
		mds := make(chan metadata.MD, 8)
		for range cap(mds) {
			go func() {
				md, _ := metadata.FromIncoming(ctx)
				mds <- md
			}()
		}
		first := <-mds
		for range cap(mds) - 1 {
			if md := <-mds; reflect.ValueOf(md).Pointer() != reflect.ValueOf(first).Pointer() {
				t.Fatalf("md %v: goroutines got different MDs", in)
			}
		}
	}
}

// TestIncomingWithTraceCopies: the trace context is copied, so a server
// may pass views of a buffer it reuses, as the native server passes views
// of the frame it read.
func TestIncomingWithTraceCopies(t *testing.T) {
	for _, tp := range []string{
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-a-future-version",
	} {
		for _, ts := range []string{"congo=t61rcWkgMzE", ""} {
			buf := []byte(tp + ts + "-")
			ctx := metadata.NewIncomingContextWithTrace(context.Background(), nil,
				unsafe.String(&buf[0], len(tp)), unsafe.String(&buf[len(tp)], len(ts)))
			for i := range buf {
				buf[i] = 'x'
			}
			gotTP, _ := metadata.IncomingValue(ctx, metadata.KeyTraceparent)
			gotTS, _ := metadata.IncomingValue(ctx, metadata.KeyTracestate)
			md, _ := metadata.FromIncoming(ctx)
			if gotTP != tp || gotTS != ts || md.Value(metadata.KeyTraceparent) != tp || md.Value(metadata.KeyTracestate) != ts {
				t.Errorf("after the buffer changed: IncomingValue %q %q, FromIncoming %v; want %q %q", gotTP, gotTS, md, tp, ts)
			}
		}
	}
}
