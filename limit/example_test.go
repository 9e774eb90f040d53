package limit_test

import (
	"context"
	"fmt"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/limit"
	"github.com/sluicerpc/sluice/status"
)

func Example() {
	l, err := limit.New(limit.Config{
		Methods: map[string]limit.Rate{"pkg.OrderService/Get": {QPS: 1, Burst: 1}},
	})
	if err != nil {
		panic(err)
	}
	handler := limit.Middleware(l)(func(ctx context.Context, req, resp any) error { return nil })

	for range 2 {
		info := &callinfo.Info{Side: callinfo.Server, Service: "pkg.OrderService", Method: "Get"}
		err := handler(callinfo.NewContext(context.Background(), info), nil, nil)
		retry, _ := limit.RetryAfter(info.ResponseMetadata)
		fmt.Println(status.Code(err), status.Convert(err).Message(), retry > 0)
	}
	// Output:
	// OK  false
	// ResourceExhausted limit: method pkg.OrderService/Get over its 1 qps (burst 1) true
}
