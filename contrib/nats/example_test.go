package nats_test

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	snats "github.com/sluicerpc/sluice/contrib/nats"
	"github.com/sluicerpc/sluice/metadata"
)

// Example shows what a message carries and what its handler gets, without
// a server: Publish and Subscribe do the same around nats.go's calls.
func Example() {
	ctx := metadata.AppendPersistent(context.Background(), "x-tenant", "acme")
	ctx, _ = metadata.SetBaggage(ctx, "sluice-lane", "canary")

	msg := &nats.Msg{Subject: "orders.created"}
	if err := snats.Inject(ctx, msg); err != nil {
		panic(err)
	}
	fmt.Println(msg.Header.Get("rpc-persist-x-tenant"), msg.Header.Get("baggage"))

	handler := snats.Extract(context.Background(), msg)
	tenant, _ := metadata.PersistentValue(handler, "x-tenant")
	lane, _ := metadata.BaggageValue(handler, "sluice-lane")
	fmt.Println(tenant, lane)
	// Output:
	// acme sluice-lane=canary
	// acme canary
}
