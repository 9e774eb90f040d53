package metadata_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/sluicerpc/sluice/metadata"
)

// Example_persistent follows one call through a server: the persistent key
// and the baggage go on to the server's own calls, the transient key does not.
func Example_persistent() {
	ctx := metadata.AppendToOutgoing(context.Background(), "x-request", "one hop")
	ctx = metadata.AppendPersistent(ctx, "x-tenant", "acme")
	ctx, _ = metadata.SetBaggage(ctx, "sluice-lane", "canary")

	// What a client sends, and what the server's handler context carries on.
	handler := metadata.NewIncomingContext(context.Background(), wire(ctx))
	next := wire(handler)

	fmt.Println(next.Get("x-request"), next.Get("rpc-persist-x-tenant"), next.Get("baggage"))
	tenant, _ := metadata.PersistentValue(handler, "x-tenant")
	lane, _ := metadata.BaggageValue(handler, "sluice-lane")
	fmt.Println(tenant, lane)
	// Output:
	// [] [acme] [sluice-lane=canary]
	// acme canary
}

// wire returns what a call made with ctx would send.
func wire(ctx context.Context) metadata.MD {
	md := metadata.MD{}
	metadata.RangeOutgoing(ctx, mdAdder(md))
	return md
}

type mdAdder metadata.MD

func (m mdAdder) AddString(k, v string) { m[k] = append(m[k], v) }

func TestPersistentTravelsTransientStays(t *testing.T) {
	ctx := metadata.AppendToOutgoing(context.Background(), "x-hop", "1")
	ctx = metadata.AppendPersistent(ctx, "X-Tenant", "acme", "x-tenant", "beta", "x-user", "u1")
	ctx, err := metadata.SetBaggage(ctx, "sluice-lane", "canary")
	if err != nil {
		t.Fatal(err)
	}
	first := wire(ctx)
	want := metadata.MD{
		"x-hop":                {"1"},
		"rpc-persist-x-tenant": {"acme", "beta"},
		"rpc-persist-x-user":   {"u1"},
		"baggage":              {"sluice-lane=canary"},
	}
	if !reflect.DeepEqual(first, want) {
		t.Fatalf("first hop sends %v, want %v", first, want)
	}
	// Three servers in a row, each calling the next with its handler context.
	md := first
	for hop := 1; hop <= 3; hop++ {
		srv := metadata.NewIncomingContext(context.Background(), md)
		if in, _ := metadata.FromIncoming(srv); !reflect.DeepEqual(in, md) {
			t.Fatalf("hop %d: incoming %v, want %v", hop, in, md)
		}
		if got, want := metadata.Persistent(srv), (metadata.MD{"x-tenant": {"acme", "beta"}, "x-user": {"u1"}}); !reflect.DeepEqual(got, want) {
			t.Fatalf("hop %d: Persistent = %v, want %v", hop, got, want)
		}
		if v, ok := metadata.BaggageValue(srv, "sluice-lane"); v != "canary" || !ok {
			t.Fatalf("hop %d: lane = %q, %v", hop, v, ok)
		}
		md = wire(srv)
		delete(want, "x-hop")
		if !reflect.DeepEqual(md, want) {
			t.Fatalf("hop %d sends %v, want %v", hop, md, want)
		}
	}
}

func TestNewOutgoingContextKeepsPersistent(t *testing.T) {
	ctx := metadata.AppendPersistent(context.Background(), "k", "p")
	ctx = metadata.AppendToOutgoing(ctx, "t", "1")
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs("n", "2"))
	if got, want := wire(ctx), (metadata.MD{"n": {"2"}, "rpc-persist-k": {"p"}}); !reflect.DeepEqual(got, want) {
		t.Fatalf("sends %v, want %v", got, want)
	}
	md, ok := metadata.FromOutgoing(ctx)
	if !ok || !reflect.DeepEqual(md, wire(ctx)) {
		t.Fatalf("FromOutgoing = %v, %v; RangeOutgoing gives %v", md, ok, wire(ctx))
	}
	for _, tc := range []struct{ key, want string }{{"n", "2"}, {"rpc-persist-k", "p"}, {"RPC-Persist-K", "p"}} {
		if v, ok := metadata.OutgoingValue(ctx, tc.key); v != tc.want || !ok {
			t.Errorf("OutgoingValue(%q) = %q, %v", tc.key, v, ok)
		}
	}
}

// TestOutgoingRoundTrip is the read-change-write idiom middlewares use
// (FromOutgoing, change, NewOutgoingContext): persistent keys and baggage
// are sent once, as changed.
func TestOutgoingRoundTrip(t *testing.T) {
	ctx := metadata.AppendToOutgoing(context.Background(), "t", "1")
	ctx = metadata.AppendPersistent(ctx, "k", "p", "gone", "x")
	ctx, _ = metadata.SetBaggage(ctx, "lane", "a")
	md, _ := metadata.FromOutgoing(ctx)
	md.Set("traceparent", "tp")
	md.Set("rpc-persist-k", "changed")
	md.Delete("rpc-persist-gone")
	ctx = metadata.NewOutgoingContext(ctx, md)
	want := metadata.MD{"t": {"1"}, "traceparent": {"tp"}, "rpc-persist-k": {"changed"}, "baggage": {"lane=a"}}
	if got := wire(ctx); !reflect.DeepEqual(got, want) {
		t.Fatalf("sends %v, want %v", got, want)
	}
	if got := metadata.Persistent(ctx); !reflect.DeepEqual(got, metadata.MD{"k": {"changed"}}) {
		t.Fatalf("Persistent = %v", got)
	}
	if v, _ := metadata.BaggageValue(ctx, "lane"); v != "a" {
		t.Fatalf("lane = %q", v)
	}
}

func TestPersistentOnlyIsOutgoing(t *testing.T) {
	ctx := metadata.AppendPersistent(context.Background(), "k", "v")
	md, ok := metadata.FromOutgoing(ctx)
	if !ok || !reflect.DeepEqual(md, metadata.MD{"rpc-persist-k": {"v"}}) {
		t.Fatalf("FromOutgoing = %v, %v", md, ok)
	}
	ctx, _ = metadata.SetBaggage(context.Background(), "a", "b")
	if v, ok := metadata.OutgoingValue(ctx, "baggage"); v != "a=b" || !ok {
		t.Fatalf("OutgoingValue(baggage) = %q, %v", v, ok)
	}
}

func TestSetPersistent(t *testing.T) {
	base := metadata.AppendPersistent(context.Background(), "a", "1", "b", "2", "a", "3")
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want metadata.MD
	}{
		{"replace", metadata.SetPersistent(base, "A", "9"), metadata.MD{"a": {"9"}, "b": {"2"}}},
		{"delete", metadata.SetPersistent(base, "a"), metadata.MD{"b": {"2"}}},
		{"delete all", metadata.SetPersistent(metadata.SetPersistent(base, "a"), "b"), nil},
		{"new", metadata.SetPersistent(context.Background(), "c", "x", "y"), metadata.MD{"c": {"x", "y"}}},
		{"empty key ignored", metadata.AppendPersistent(context.Background(), "", "v"), nil},
		{"base untouched", base, metadata.MD{"a": {"1", "3"}, "b": {"2"}}},
	} {
		if got := metadata.Persistent(tc.ctx); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Persistent = %v, want %v", tc.name, got, tc.want)
		}
	}
	if v, ok := metadata.PersistentValue(base, "A"); v != "1" || !ok {
		t.Errorf("PersistentValue(A) = %q, %v", v, ok)
	}
	if _, ok := metadata.PersistentValue(base, "c"); ok {
		t.Error("PersistentValue(c) found a key never set")
	}
	defer func() {
		if recover() == nil {
			t.Error("AppendPersistent with an odd count did not panic")
		}
	}()
	metadata.AppendPersistent(base, "odd")
}

func TestSiblingsDoNotShareChain(t *testing.T) {
	base := metadata.AppendPersistent(context.Background(), "k", "0")
	a := metadata.AppendPersistent(base, "k", "a")
	b := metadata.AppendPersistent(base, "k", "b")
	if ga, gb := metadata.Persistent(a).Get("k"), metadata.Persistent(b).Get("k"); !slices.Equal(ga, []string{"0", "a"}) || !slices.Equal(gb, []string{"0", "b"}) {
		t.Fatalf("siblings share state: %v %v", ga, gb)
	}
	md := metadata.Persistent(a)
	md.Set("k", "changed")
	if got := metadata.Persistent(a).Get("k"); !slices.Equal(got, []string{"0", "a"}) {
		t.Fatalf("changing Persistent's MD changed the context: %v", got)
	}
}

// TestIncomingForms covers the ways a persistent key may arrive: Sluice's
// form, other cases of it, and Kitex's TTHeader form.
func TestIncomingForms(t *testing.T) {
	for _, tc := range []struct {
		key, wire, name string
		persistent      bool
	}{
		{"rpc-persist-x-tenant", "rpc-persist-x-tenant", "x-tenant", true},
		{"Rpc-Persist-X-Tenant", "rpc-persist-x-tenant", "x-tenant", true},
		{"RPC_PERSIST_X_TENANT", "rpc-persist-x-tenant", "x-tenant", true},
		{"RPC_PERSIST_userId", "rpc-persist-userid", "userid", true},
		{"rpc-persist-", "", "", false},
		{"rpc-transit-x", "", "", false},
		{"RPC_TRANSIT_X", "", "", false},
		{"x-tenant", "", "", false},
	} {
		if got := metadata.IsPersistent(tc.key); got != tc.persistent {
			t.Errorf("IsPersistent(%q) = %v", tc.key, got)
		}
		ctx := metadata.NewIncomingContext(context.Background(), metadata.MD{tc.key: {"v"}})
		out := wire(ctx)
		if !tc.persistent {
			if len(out) != 0 {
				t.Errorf("%q: transient key forwarded as %v", tc.key, out)
			}
			continue
		}
		if !reflect.DeepEqual(out, metadata.MD{tc.wire: {"v"}}) {
			t.Errorf("%q forwarded as %v, want %s", tc.key, out, tc.wire)
		}
		if v, ok := metadata.PersistentValue(ctx, tc.name); v != "v" || !ok {
			t.Errorf("%q: PersistentValue(%q) = %q, %v", tc.key, tc.name, v, ok)
		}
	}
}

func TestIncomingReplacesChain(t *testing.T) {
	parent := metadata.AppendPersistent(context.Background(), "old", "1")
	parent = metadata.AppendToOutgoing(parent, "t", "x")
	ctx := metadata.NewIncomingContext(parent, metadata.MD{"rpc-persist-new": {"2"}})
	if got, want := wire(ctx), (metadata.MD{"t": {"x"}, "rpc-persist-new": {"2"}}); !reflect.DeepEqual(got, want) {
		t.Fatalf("sends %v, want %v", got, want)
	}
	// Without persistent keys the parent's chain stays.
	ctx = metadata.NewIncomingContext(parent, metadata.MD{"x": {"y"}})
	if got := metadata.Persistent(ctx); !reflect.DeepEqual(got, metadata.MD{"old": {"1"}}) {
		t.Fatalf("Persistent = %v", got)
	}
}

// TestAllocations pins the cost: nothing more for calls without persistent
// metadata, nothing per call for sending it.
func TestAllocations(t *testing.T) {
	bg := context.Background()
	transient := metadata.MD{"x-a": {"1"}, "x-b": {"2"}, "traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	if n := testing.AllocsPerRun(100, func() { metadata.NewIncomingContext(bg, transient) }); n != 1 {
		t.Errorf("NewIncomingContext without persistent keys allocates %v times, want 1 (its context)", n)
	}
	ctx := metadata.AppendPersistent(bg, "x-tenant", "acme")
	ctx, _ = metadata.SetBaggage(ctx, "sluice-lane", "canary")
	ctx = metadata.NewIncomingContext(bg, wire(ctx))
	var sink discard
	if n := testing.AllocsPerRun(100, func() { metadata.RangeOutgoing(ctx, sink) }); n != 0 {
		t.Errorf("RangeOutgoing with persistent keys and baggage allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { metadata.BaggageValue(ctx, "sluice-lane") }); n != 0 {
		t.Errorf("BaggageValue allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { metadata.PersistentValue(ctx, "x-tenant") }); n != 0 {
		t.Errorf("PersistentValue allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { metadata.RangeOutgoing(bg, sink) }); n != 0 {
		t.Errorf("RangeOutgoing on an empty context allocates %v times", n)
	}
}

type discard struct{}

func (discard) AddString(string, string) {}
