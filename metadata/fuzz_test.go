package metadata_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/sluicerpc/sluice/metadata"
	"go.opentelemetry.io/otel/baggage"
)

// FuzzIncoming decodes arbitrary incoming metadata ("key=value" lines) the
// way a server does and checks what its handler context sends on: only
// persistent keys (in wire form) and baggage, never a transient key, and the
// same again after a second hop.
func FuzzIncoming(f *testing.F) {
	for _, s := range []string{
		"x-tenant=acme\nrpc-persist-user=u1\nbaggage=sluice-lane=canary",
		"RPC_PERSIST_X_TENANT=acme\nRPC_TRANSIT_Y=1",
		"Rpc-Persist-A=1\nrpc-persist-a=2\nBAGGAGE=a=1;p\nbaggage=b=%20",
		"rpc-persist-=x\nrpc_persist_=y\nbaggage=,,,",
		"traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\ntracestate=a=b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		md := metadata.MD{}
		for line := range strings.SplitSeq(s, "\n") {
			k, v, _ := strings.Cut(line, "=")
			md[k] = append(md[k], v)
		}
		ctx := metadata.NewIncomingContext(context.Background(), md)
		out := wire(ctx)
		for k := range out {
			if k != metadata.KeyBaggage && (!strings.HasPrefix(k, metadata.PersistentPrefix) || hasUpper(k) || len(k) == len(metadata.PersistentPrefix)) {
				t.Fatalf("handler context sends %q (from %q)", k, s)
			}
		}
		for k, vs := range md {
			if metadata.IsPersistent(k) {
				w := k
				if hasUpper(k) {
					w = strings.ToLower(k)
				}
				if !strings.EqualFold(k[:len(metadata.PersistentPrefix)], metadata.PersistentPrefix) { // Kitex's RPC_PERSIST_KEY
					w = metadata.PersistentPrefix + strings.ToLower(strings.ReplaceAll(k[len(metadata.PersistentPrefix):], "_", "-"))
				}
				for _, v := range vs {
					if !slices.Contains(out[w], v) {
						t.Fatalf("persistent %s=%q not forwarded as %s: %v", k, v, w, out)
					}
				}
				continue
			}
			if _, ok := out[k]; ok && !strings.EqualFold(k, metadata.KeyBaggage) {
				t.Fatalf("transient key %q forwarded", k)
			}
		}
		p := metadata.Persistent(ctx)
		for k, vs := range p {
			if got := out.Get(metadata.PersistentPrefix + k); !sameValues(got, vs) {
				t.Fatalf("Persistent %s = %v, sent %v", k, vs, got)
			}
		}
		// Read, set back: the same is sent, once.
		back, _ := metadata.FromOutgoing(ctx)
		if rt := wire(metadata.NewOutgoingContext(ctx, back)); len(rt) != len(out) {
			t.Fatalf("after FromOutgoing and NewOutgoingContext sends %v, before %v", rt, out)
		} else {
			for k, vs := range out {
				if !sameValues(rt[k], vs) {
					t.Fatalf("after FromOutgoing and NewOutgoingContext sends %s=%v, before %v", k, rt[k], vs)
				}
			}
		}
		// A second hop forwards the same.
		ctx2 := metadata.NewIncomingContext(context.Background(), out)
		out2 := wire(ctx2)
		if len(out2) != len(out) {
			t.Fatalf("second hop sends %v, first %v", out2, out)
		}
		for k, vs := range out {
			if k == metadata.KeyBaggage {
				continue
			}
			if !sameValues(out2[k], vs) {
				t.Fatalf("second hop sends %s=%v, first %v", k, out2[k], vs)
			}
		}
		if a, b := sortedMembers(metadata.Baggage(ctx)), sortedMembers(metadata.Baggage(ctx2)); !slices.Equal(a, b) {
			t.Fatalf("baggage changed across a hop: %v then %v", a, b)
		}
		// A server that keeps the trace context apart gives the handler
		// the same metadata and sends on the same.
		rest, tp, ts := md.Copy(), takeFirst(md, metadata.KeyTraceparent), takeFirst(md, metadata.KeyTracestate)
		for _, k := range []string{metadata.KeyTraceparent, metadata.KeyTracestate} {
			if vs := rest[k]; len(vs) > 0 && vs[0] != "" {
				if rest[k] = vs[1:]; len(vs) == 1 {
					delete(rest, k)
				}
			}
		}
		if len(rest) == 0 {
			rest = nil // as servers pass it: the smaller context for trace context only
		}
		ctx3 := metadata.NewIncomingContextWithTrace(context.Background(), rest, tp, ts)
		if gotTP, gotTS := metadata.IncomingTraceContext(ctx3); gotTP != md.Value(metadata.KeyTraceparent) || gotTS != md.Value(metadata.KeyTracestate) {
			t.Fatalf("trace context apart: IncomingTraceContext = %q, %q; want %q, %q", gotTP, gotTS, md.Value(metadata.KeyTraceparent), md.Value(metadata.KeyTracestate))
		}
		if in, _ := metadata.FromIncoming(ctx3); len(in) != len(md) {
			t.Fatalf("trace context apart: FromIncoming = %v, want %v", in, md)
		} else {
			for k, vs := range md {
				if !slices.Equal(in[k], vs) {
					t.Fatalf("trace context apart: FromIncoming %s = %q, want %q", k, in[k], vs)
				}
				if v, _ := metadata.IncomingValue(ctx3, k); k == strings.ToLower(k) && len(vs) > 0 && v != vs[0] {
					t.Fatalf("trace context apart: IncomingValue(%s) = %q, want %q", k, v, vs[0])
				}
			}
		}
		if out3 := wire(ctx3); len(out3) != len(out) {
			t.Fatalf("trace context apart: sends %v, want %v", out3, out)
		}
	})
}

// takeFirst returns the first value of key in md when it is not empty,
// as a server that keeps the trace context apart takes it.
func takeFirst(md metadata.MD, key string) string {
	if vs := md[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// FuzzBaggage decodes an arbitrary baggage header as a server does: the
// members are the ones the OpenTelemetry parser keeps, and what goes on
// decodes to the same members.
func FuzzBaggage(f *testing.F) {
	for _, s := range []string{
		"sluice-lane=canary",
		"a=1, b = 2;p1;p2=x, c=%E2%82%AC",
		"a=x%2",
		"a=1,a=2",
		";;,=,a=",
		"k=v;p=%ZZ",
		"a=\xff\xfe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.MD{"baggage": {raw}})
		got := metadata.Baggage(ctx)
		want, _ := baggage.Parse(raw)
		if a, b := sortedMembers(got), sortedMembers(want); !slices.Equal(a, b) {
			t.Fatalf("members %v, the parser keeps %v", a, b)
		}
		h, ok := metadata.OutgoingValue(ctx, metadata.KeyBaggage)
		if ok != (got.Len() > 0) {
			t.Fatalf("forwards %q (%v) for %d members", h, ok, got.Len())
		}
		if !ok {
			return
		}
		again, err := baggage.Parse(h)
		if err != nil {
			t.Fatalf("forwarded %q does not parse: %v", h, err)
		}
		if a, b := sortedMembers(got), sortedMembers(again); !slices.Equal(a, b) {
			t.Fatalf("forwarded %q has members %v, want %v", h, b, a)
		}
		for _, m := range got.Members() {
			if v, ok := metadata.BaggageValue(ctx, m.Key()); !ok || v != m.Value() {
				t.Fatalf("BaggageValue(%q) = %q, %v; member has %q", m.Key(), v, ok, m.Value())
			}
		}
	})
}

func sameValues(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func hasUpper(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return 'A' <= r && r <= 'Z' })
}
