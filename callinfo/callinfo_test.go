package callinfo_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluicerpc/sluice/callinfo"
)

type otherKey struct{}

func Example() {
	ctx := callinfo.NewContext(context.Background(), &callinfo.Info{Side: callinfo.Client, Service: "pkg.Svc", Method: "Get"})
	info := callinfo.FromContext(ctx)
	fmt.Println(info.Side, info.Service, info.Method)
	// Output: client pkg.Svc Get
}

func TestCarrierAndWrapping(t *testing.T) {
	c := &callinfo.Carrier{Context: context.WithValue(context.Background(), otherKey{}, "v")}
	c.Info.Method = "M"
	var ctx context.Context = c
	ctx, cancel := context.WithCancel(ctx) // wrapped: found through Value
	defer cancel()
	if info := callinfo.FromContext(ctx); info != &c.Info {
		t.Fatalf("FromContext through a wrapper = %v", info)
	}
	if ctx.Value(otherKey{}) != "v" {
		t.Fatal("Carrier hides parent values")
	}
	if callinfo.FromContext(context.Background()) != nil {
		t.Fatal("empty context has an Info")
	}
}

// TestRoomFromContext: a call's room is its own carrier's, found through
// wrapping contexts; a call with an Info of its own (a carrier without a
// room, or NewContext) does not see an outer call's room.
func TestRoomFromContext(t *testing.T) {
	room := new(int)
	outer := &callinfo.Carrier{Context: context.Background(), Room: room}
	if got := callinfo.RoomFromContext(outer); got != room {
		t.Errorf("the carrier's own room: %v, want %v", got, room)
	}
	wrapped := context.WithValue(outer, otherKey{}, 1)
	if got := callinfo.RoomFromContext(wrapped); got != room {
		t.Errorf("through a wrapping context: %v, want %v", got, room)
	}
	inner := &callinfo.Carrier{Context: wrapped}
	if got := callinfo.RoomFromContext(inner); got != nil {
		t.Errorf("an inner carrier without room: %v, want nil", got)
	}
	if got := callinfo.RoomFromContext(context.WithValue(inner, otherKey{}, 2)); got != nil {
		t.Errorf("an inner carrier without room, wrapped: %v, want nil", got)
	}
	if got := callinfo.RoomFromContext(callinfo.NewContext(wrapped, &callinfo.Info{})); got != nil {
		t.Errorf("NewContext over a carrier with room: %v, want nil", got)
	}
	if got := callinfo.RoomFromContext(context.Background()); got != nil {
		t.Errorf("no call: %v, want nil", got)
	}
}
