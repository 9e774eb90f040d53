package metadata_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluicerpc/sluice/metadata"
	"go.opentelemetry.io/otel/baggage"
)

func ExampleSetBaggage() {
	ctx, err := metadata.SetBaggage(context.Background(), "sluice-lane", "canary")
	if err != nil {
		panic(err)
	}
	ctx, _ = metadata.SetBaggage(ctx, "note", "a, b")
	lane, _ := metadata.BaggageValue(ctx, "sluice-lane")
	note, _ := metadata.BaggageValue(ctx, "note")
	fmt.Printf("%s %q\n", lane, note)
	// Output: canary "a, b"
}

func TestBaggageSetGet(t *testing.T) {
	bg := context.Background()
	if metadata.Baggage(bg).Len() != 0 {
		t.Fatal("empty context has baggage")
	}
	if _, ok := metadata.BaggageValue(bg, "k"); ok {
		t.Fatal("empty context has a baggage member")
	}
	ctx, err := metadata.SetBaggage(bg, "k", "v 1,;=%")
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := metadata.OutgoingValue(ctx, metadata.KeyBaggage); h != "k=v%201%2C%3B=%25" {
		t.Fatalf("header %q", h)
	}
	ctx2, err := metadata.SetBaggage(ctx, "k", "w")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := metadata.BaggageValue(ctx2, "k"); v != "w" {
		t.Fatalf("replaced member = %q", v)
	}
	if v, _ := metadata.BaggageValue(ctx, "k"); v != "v 1,;=%" {
		t.Fatalf("parent's member changed to %q", v)
	}
	for _, kv := range [][2]string{{"bad key", "v"}, {"", "v"}, {"k", "\xff"}} {
		if got, err := metadata.SetBaggage(ctx, kv[0], kv[1]); err == nil || !strings.HasPrefix(err.Error(), "metadata: ") || got != ctx {
			t.Errorf("SetBaggage(%q, %q) = %v", kv[0], kv[1], err)
		}
	}
	cleared := metadata.WithBaggage(ctx, baggage.Baggage{})
	if _, ok := metadata.OutgoingValue(cleared, metadata.KeyBaggage); ok || metadata.Baggage(cleared).Len() != 0 {
		t.Fatal("empty WithBaggage left baggage")
	}
	// Baggage and persistent keys live side by side.
	both := metadata.AppendPersistent(ctx, "p", "1")
	both, _ = metadata.SetBaggage(both, "b", "2")
	if got := wire(both); len(got) != 2 || got.Value("rpc-persist-p") != "1" || !strings.Contains(got.Value("baggage"), "b=2") {
		t.Fatalf("sends %v", got)
	}
}

// TestIncomingBaggage covers what may arrive: several headers, properties,
// invalid members, and headers over the W3C limits.
func TestIncomingBaggage(t *testing.T) {
	many := make([]string, 70)
	for i := range many {
		many[i] = fmt.Sprintf("k%d=v", i)
	}
	for _, tc := range []struct {
		name    string
		in      []string
		members map[string]string
		header  string // "" for any valid encoding of members
	}{
		{"one header passes unchanged", []string{"a=1, b = 2;p1;p2=x"}, map[string]string{"a": "1", "b": "2"}, "a=1, b = 2;p1;p2=x"},
		{"percent-encoded", []string{"a=x%20y%2Cz"}, map[string]string{"a": "x y,z"}, "a=x%20y%2Cz"},
		{"several headers", []string{"a=1", "b=2"}, map[string]string{"a": "1", "b": "2"}, ""},
		{"invalid members dropped", []string{"a=1,=x,b c=2,d=3"}, map[string]string{"a": "1", "d": "3"}, ""},
		{"all invalid", []string{"no equals sign"}, nil, ""},
		{"empty", []string{""}, nil, ""},
		{"over 64 members", []string{strings.Join(many, ",")}, nil, ""},
		{"over 8192 bytes", []string{"a=" + strings.Repeat("x", 8192)}, nil, ""},
	} {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.MD{"baggage": tc.in})
		b := metadata.Baggage(ctx)
		if tc.name == "over 64 members" {
			if b.Len() != 64 {
				t.Errorf("%s: kept %d members, want the first 64", tc.name, b.Len())
			}
			continue
		}
		if got := members(b); !mapsEqual(got, tc.members) {
			t.Errorf("%s: members %v, want %v", tc.name, got, tc.members)
		}
		h, ok := metadata.OutgoingValue(ctx, metadata.KeyBaggage)
		if len(tc.members) == 0 {
			if ok {
				t.Errorf("%s: forwards %q", tc.name, h)
			}
			continue
		}
		if tc.header != "" && h != tc.header {
			t.Errorf("%s: forwards %q, want %q", tc.name, h, tc.header)
		}
		again, err := baggage.Parse(h)
		if err != nil || !mapsEqual(members(again), tc.members) {
			t.Errorf("%s: forwarded %q parses to %v, %v", tc.name, h, members(again), err)
		}
	}
	// Properties survive the hop.
	ctx := metadata.NewIncomingContext(context.Background(), metadata.MD{"Baggage": {"a=1;p=q", "b=2"}})
	if p := metadata.Baggage(ctx).Member("a").Properties(); len(p) != 1 || p[0].Key() != "p" {
		t.Fatalf("properties %v", p)
	}
}

func members(b baggage.Baggage) map[string]string {
	if b.Len() == 0 {
		return nil
	}
	m := map[string]string{}
	for _, mb := range b.Members() {
		m[mb.Key()] = mb.Value()
	}
	return m
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// sortedMembers is b's members encoded one by one and sorted: two baggages
// with equal sortedMembers are the same baggage.
func sortedMembers(b baggage.Baggage) []string {
	var s []string
	for _, m := range b.Members() {
		s = append(s, m.String())
	}
	slices.Sort(s)
	return s
}
