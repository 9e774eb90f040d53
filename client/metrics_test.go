package client_test

import (
	"context"
	"testing"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/examples/echo/echotest"
	"github.com/sluicerpc/sluice/observe/metrics"
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
