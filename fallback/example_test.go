package fallback_test

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/fallback"
	"github.com/sluicerpc/sluice/status"
)

func Example() {
	f, err := fallback.New(fallback.Config{
		Cache: true,
		Func: func(ctx context.Context, req, resp any, err error) error {
			resp.(*echopb.EchoResponse).Message = "default answer"
			return nil
		},
	})
	if err != nil {
		panic(err)
	}
	down := false
	call := f.Middleware()(func(ctx context.Context, req, resp any) error {
		if down {
			return status.Err(codes.Unavailable, "connection refused")
		}
		resp.(*echopb.EchoResponse).Message = "fresh answer to " + req.(*echopb.EchoRequest).Message
		return nil
	})
	ask := func(msg string) {
		ctx := &callinfo.Carrier{Context: context.Background(), Info: callinfo.Info{FullMethod: "/echo.EchoService/Echo"}}
		resp := &echopb.EchoResponse{}
		err := call(ctx, &echopb.EchoRequest{Message: msg}, resp)
		fmt.Printf("%s: %q err=%v fallback=%q\n", msg, resp.Message, err, ctx.Info.ResponseMetadata.Value(fallback.MetadataKey))
	}

	ask("a")
	down = true
	ask("a") // the last good response to "a"
	ask("b") // nothing cached for "b": the function answers
	// Output:
	// a: "fresh answer to a" err=<nil> fallback=""
	// a: "fresh answer to a" err=<nil> fallback="cache"
	// b: "default answer" err=<nil> fallback="func"
}
