package client_test

import (
	"context"
	"testing"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/discovery/static"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/examples/echo/echotest"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/observe/metrics"
	"github.com/sluicerpc/sluice/route"
)

// TestWithMetrics: calls are counted by code, and the default balancer's
// ejection of a failing instance is counted. Both instances fail, so that
// P2C cannot steer around them and one is ejected (at most half may be).
func TestWithMetrics(t *testing.T) {
	bad, bad2 := echotest.Start(t, 1), echotest.Start(t, 1)
	m, err := metrics.New(metrics.Config{NoRuntimeMetrics: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(bad+","+bad2, client.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := echopb.NewEchoServiceClient(c)
	for i := 0; i < 40; i++ {
		cl.Echo(context.Background(), &echopb.EchoRequest{Message: "x"})
	}
	families, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := map[string]float64{}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetName() {
			case "sluice_client_ejections_total":
				sum["ejections "+labels["peer"]] += mt.GetCounter().GetValue()
			case "sluice_client_requests_total":
				sum[labels["code"]] += mt.GetCounter().GetValue()
			}
		}
	}
	if n := sum["ejections "+bad] + sum["ejections "+bad2]; n != 1 {
		t.Errorf("counts %v: want one ejection", sum)
	}
	if sum["UNAVAILABLE"] != 40 {
		t.Errorf("counts %v, want 40 UNAVAILABLE requests", sum)
	}
}

// TestRouteMetricLabels: the client's request counts say which route and
// subset served each call; unrouted calls have both labels empty.
func TestRouteMetricLabels(t *testing.T) {
	v1, _ := countingInstance(t, "v1", 0)
	v2, _ := countingInstance(t, "v2", 0)
	tb, err := route.NewTable(ruleDoc(
		route.Route{
			Name:         "beta-users",
			Match:        &route.Match{Headers: []route.StringMatch{{Key: "x-user-group", Exact: "beta"}}},
			Destinations: []route.Destination{{Name: "canary", Subset: map[string]string{"version": "v2"}}},
		},
		route.Route{Name: "default", Destinations: []route.Destination{{Subset: map[string]string{"version": "v1"}}}},
	), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := metrics.New(metrics.Config{NoRuntimeMetrics: true})
	if err != nil {
		t.Fatal(err)
	}
	routed, err := client.New("chain", client.WithResolver(static.Of(v1, v2)), client.WithRoutes(tb), client.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	defer routed.Close()
	plain, err := client.New(v1.Addr, client.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	beta := metadata.AppendToOutgoing(context.Background(), "x-user-group", "beta")
	for ctx, n := range map[context.Context]int{beta: 3, context.Background(): 5} {
		for range n {
			if _, err := echopb.NewEchoServiceClient(routed).Echo(ctx, &echopb.EchoRequest{Message: "x"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := echopb.NewEchoServiceClient(plain).Echo(context.Background(), &echopb.EchoRequest{Message: "x"}); err != nil {
		t.Fatal(err)
	}
	families, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "sluice_client_requests_total" {
			continue
		}
		for _, mt := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range mt.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			got[l["peer"]+" "+l["route"]+" "+l["subset"]+" "+l["code"]] += mt.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		v2.Addr + " beta-users canary OK":  3,
		v1.Addr + " default version=v1 OK": 5,
		v1.Addr + "   OK":                  1,
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}
