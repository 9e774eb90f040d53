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
