package endpoint_test

import (
	"context"
	"fmt"

	"github.com/sluicerpc/sluice/endpoint"
)

func tag(name string) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			fmt.Println("enter", name)
			err := next(ctx, req, resp)
			fmt.Println("leave", name)
			return err
		}
	}
}

func ExampleChain() {
	ep := endpoint.Chain(tag("outer"), tag("inner"))(func(ctx context.Context, req, resp any) error {
		resp.(*endpoint.Reply).Msg = "reply to " + req.(string)
		return nil
	})
	var r endpoint.Reply
	_ = ep(context.Background(), "ping", &r)
	fmt.Println(endpoint.Message(&r))
	// Output:
	// enter outer
	// enter inner
	// leave inner
	// leave outer
	// reply to ping
}
