package balancertest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/balancer/balancertest"
	"github.com/sluicerpc/sluice/balancer/outlier"
	"github.com/sluicerpc/sluice/balancer/p2c"
	"github.com/sluicerpc/sluice/balancer/random"
	"github.com/sluicerpc/sluice/balancer/ringhash"
	"github.com/sluicerpc/sluice/balancer/roundrobin"
	"github.com/sluicerpc/sluice/balancer/wrr"
	"github.com/sluicerpc/sluice/metadata"
)

// builders returns every Builder in the module, fresh.
func builders(tb testing.TB) []struct {
	name string
	b    balancer.Builder
} {
	rh, err := ringhash.New(ringhash.Config{Key: "x-user-id"})
	if err != nil {
		tb.Fatal(err)
	}
	wrap := func(inner balancer.Builder) balancer.Builder {
		b, err := outlier.New(inner, outlier.Config{})
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	return []struct {
		name string
		b    balancer.Builder
	}{
		{"roundrobin", roundrobin.Builder{}},
		{"p2c", p2c.New()},
		{"wrr", wrr.Builder{}},
		{"random", random.Builder{}},
		{"ringhash", rh},
		{"outlier+p2c", wrap(p2c.New())},
		{"outlier+wrr", wrap(wrr.Builder{})},
		{"outlier+ringhash", wrap(rh)},
	}
}

func TestSuite(t *testing.T) {
	for _, tc := range builders(t) {
		t.Run(tc.name, func(t *testing.T) { balancertest.Suite(t, tc.b) })
	}
}

// BenchmarkPick picks (and ends the call, for pickers that want to know)
// over 100 instances of weights 10 to 100. Ring hash calls carry one of
// 1024 user ids.
func BenchmarkPick(b *testing.B) {
	ins := balancertest.Instances(100)
	for i := range ins {
		ins[i].Weight = 10 * (i%10 + 1)
	}
	ctxs := make([]context.Context, 1024)
	for i := range ctxs {
		ctxs[i] = metadata.AppendToOutgoing(context.Background(), "x-user-id", fmt.Sprint("user-", i))
	}
	// The client reads the clock once per call for Latency and passes it
	// as End, so pickers need not read it again.
	di := balancer.DoneInfo{Latency: time.Millisecond, End: time.Now()}
	for _, tc := range builders(b) {
		p := tc.b.Build(ins)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				res, err := p.Pick(balancer.PickInfo{Ctx: ctxs[i&1023], Method: "Get"})
				if err != nil {
					b.Fatal(err)
				}
				if res.Done != nil {
					res.Done(di)
				}
				i++
			}
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					res, err := p.Pick(balancer.PickInfo{Ctx: ctxs[i&1023], Method: "Get"})
					if err != nil {
						b.Error(err)
						return
					}
					if res.Done != nil {
						res.Done(di)
					}
					i++
				}
			})
		})
	}
}

// BenchmarkPickOnly measures Pick alone for the pickers whose Done does
// work, so that Pick's cost and Done's (P2C's reads the clock) show apart.
// In-flight counts grow without bound here, which costs a picker nothing.
func BenchmarkPickOnly(b *testing.B) {
	ins := balancertest.Instances(100)
	for i := range ins {
		ins[i].Weight = 10 * (i%10 + 1)
	}
	p := p2c.New().Build(ins)
	b.Run("p2c", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Pick(balancer.PickInfo{Method: "Get"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBuild builds a picker over 100 instances of weights 10 to 100,
// as a client does on every new snapshot.
func BenchmarkBuild(b *testing.B) {
	ins := balancertest.Instances(100)
	for i := range ins {
		ins[i].Weight = 10 * (i%10 + 1)
	}
	for _, tc := range builders(b) {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tc.b.Build(ins)
			}
		})
	}
}
