package route_test

import (
	"fmt"

	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/route"
)

func Example() {
	t, err := route.NewTable([]route.Rule{{
		Name:    "orders",
		Service: "shop.v1.OrderService",
		Routes: []route.Route{
			{
				Name:         "testers",
				Match:        &route.Match{Headers: []route.StringMatch{{Key: "x-user-group", Exact: "testers"}}},
				Destinations: []route.Destination{{Subset: map[string]string{"version": "v2"}}},
			},
			{Name: "default", Destinations: []route.Destination{{Subset: map[string]string{"version": "v1"}}}},
		},
	}}, []route.Lane{{Name: "blue"}})
	if err != nil {
		panic(err)
	}
	instances := []discovery.Instance{
		{Addr: "10.0.0.1:80", Labels: map[string]string{"version": "v1"}},
		{Addr: "10.0.0.2:80", Labels: map[string]string{"version": "v2"}},
		{Addr: "10.0.0.3:80", Labels: map[string]string{"version": "v2", "lane": "blue"}},
	}
	call := func(group, lane string) {
		d := t.Decide(route.Input{
			Service:  "shop.v1.OrderService",
			Method:   "Get",
			Metadata: func(k string) (string, bool) { return group, k == "x-user-group" && group != "" },
			Baggage:  func(k string) (string, bool) { return lane, k == route.LaneKey && lane != "" },
		})
		for _, in := range route.Select(instances, d) {
			fmt.Printf("group=%q lane=%q: route %s, subset %s -> %s\n", group, lane, d.Route, d.Subset.Name, in.Addr)
		}
	}
	call("testers", "")
	call("", "")
	call("", "blue")
	// Output:
	// group="testers" lane="": route testers, subset version=v2 -> 10.0.0.2:80
	// group="" lane="": route default, subset version=v1 -> 10.0.0.1:80
	// group="" lane="blue": route default, subset version=v1 -> 10.0.0.3:80
}
