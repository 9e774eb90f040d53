package roundrobin_test

import (
	"errors"
	"testing"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/balancer/roundrobin"
	"github.com/sluicerpc/sluice/discovery"
)

func TestEvenSpread(t *testing.T) {
	ins := []discovery.Instance{{Addr: "a"}, {Addr: "b"}, {Addr: "c"}}
	p := roundrobin.Builder{}.Build(ins)
	counts := map[string]int{}
	var prev string
	for i := 0; i < 300; i++ {
		res, err := p.Pick(balancer.PickInfo{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Instance.Addr == prev {
			t.Fatalf("pick %d repeated %s", i, prev)
		}
		prev = res.Instance.Addr
		counts[prev]++
	}
	for _, in := range ins {
		if counts[in.Addr] != 100 {
			t.Errorf("%s picked %d of 300", in.Addr, counts[in.Addr])
		}
	}
}

func TestEmpty(t *testing.T) {
	_, err := roundrobin.Builder{}.Build(nil).Pick(balancer.PickInfo{})
	if !errors.Is(err, balancer.ErrNoInstance) {
		t.Fatalf("got %v", err)
	}
}
