package connect_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/protocol/connect"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func Example() {
	// A stand-in Connect server that knows no procedures.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		connect.WriteError(w, status.HTTPStatus(codes.Unimplemented), status.Errorf(codes.Unimplemented, "no procedure %s", r.URL.Path))
	}))
	defer ts.Close()

	c, err := connect.NewClient(ts.URL)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	d, _ := ctx.Deadline()
	info := &callinfo.Info{Service: "pkg.v1.EchoService", Method: "Echo", Deadline: d}
	err = c.Call(ctx, info, wrapperspb.String("hi"), new(wrapperspb.StringValue))
	fmt.Println(status.Code(err), status.Convert(err).Message())
	// Output: Unimplemented no procedure /pkg.v1.EchoService/Echo
}

func ExampleParseTimeout() {
	d, err := connect.ParseTimeout("1500")
	fmt.Println(d, err)
	_, err = connect.ParseTimeout("10000000000")
	fmt.Println(err)
	// Output:
	// 1.5s <nil>
	// connect: Connect-Timeout-Ms "10000000000": want 1 to 10 digits
}
