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

func TestOf(t *testing.T) {
	var got []discovery.Instance
	r := static.Of(discovery.Instance{Addr: "a:1", Labels: map[string]string{"lane": "blue"}, Weight: 5})
	if _, err := r.Resolve(context.Background(), "svc", func(ins []discovery.Instance) { got = ins }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Service != "svc" || got[0].Addr != "a:1" || got[0].Labels["lane"] != "blue" || got[0].Weight != 5 {
		t.Fatalf("got %+v", got)
	}
}
