package metadata_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

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
