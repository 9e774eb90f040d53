package client

import (
	"math"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/route"
)

// TestDrawSplits: the per-call draw comes from the call's start time,
// which differs between calls by a few nanoseconds only; Decide's mixing
// still splits them by weight (within 2 points over 100k calls, as the
// route package's own statistical tests ask of a uniform draw), and every
// attempt of one call draws the same.
func TestDrawSplits(t *testing.T) {
	const svc = "pkg.Svc"
	tb, err := route.NewTable([]route.Rule{{Name: "r", Service: svc, Routes: []route.Route{{Name: "split", Destinations: []route.Destination{
		{Subset: map[string]string{"version": "v1"}, Weight: 70},
		{Subset: map[string]string{"version": "v2"}, Weight: 30},
	}}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []time.Duration{1, 97 * time.Nanosecond, time.Microsecond} {
		r := &router{salt: 0x9e3779b97f4a7c15}
		base := time.Now()
		const n = 100_000
		v2 := 0
		for i := range n {
			info := callinfo.Info{Start: base.Add(time.Duration(i) * step)}
			d := tb.Decide(route.Input{Service: svc, Method: "M", Rand: r.draw(&info)})
			if d.Subset.Name == "version=v2" {
				v2++
			}
			if i%1000 == 0 {
				info.Attempt = 2 // a retry of the same call
				if again := tb.Decide(route.Input{Service: svc, Method: "M", Rand: r.draw(&info)}); again.Subset.Name != d.Subset.Name {
					t.Fatalf("step %v, call %d: the retry drew %q, the first attempt %q", step, i, again.Subset.Name, d.Subset.Name)
				}
			}
		}
		if got := 100 * float64(v2) / n; math.Abs(got-30) > 2 {
			t.Errorf("step %v: %.2f%% of calls on v2, want 30 ± 2", step, got)
		}
	}
}
