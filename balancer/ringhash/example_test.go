package ringhash_test

import (
	"context"
	"fmt"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/balancer/ringhash"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/metadata"
)

func Example() {
	b, err := ringhash.New(ringhash.Config{Key: "x-user-id"})
	if err != nil {
		panic(err)
	}
	p := b.Build([]discovery.Instance{
		{Addr: "10.0.0.1:8080"},
		{Addr: "10.0.0.2:8080"},
		{Addr: "10.0.0.3:8080"},
	})
	ctx := metadata.AppendToOutgoing(context.Background(), "x-user-id", "42")
	for i := 0; i < 3; i++ {
		res, _ := p.Pick(balancer.PickInfo{Ctx: ctx})
		fmt.Println(res.Instance.Addr)
	}
	// Output:
	// 10.0.0.2:8080
	// 10.0.0.2:8080
	// 10.0.0.2:8080
}
