package static_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/discovery/static"
)

func TestParse(t *testing.T) {
	var got []discovery.Instance
	c, err := static.Parse(" a:1, ,b:2,").Resolve(context.Background(), "echo", func(ins []discovery.Instance) { got = ins })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := []discovery.Instance{{Service: "echo", Addr: "a:1"}, {Service: "echo", Addr: "b:2"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if w := got[0].EffectiveWeight(); w != discovery.DefaultWeight {
		t.Fatalf("default weight %d", w)
	}
}
