package echoimpl_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/sluicerpc/sluice/internal/loadgen"
	"github.com/sluicerpc/sluice/internal/loadgen/echoimpl"
	"github.com/sluicerpc/sluice/internal/loadgen/loadgentest"
)

func TestImpls(t *testing.T) {
	loadgentest.Check(t, echoimpl.Impl())
	loadgentest.CheckSizes(t, echoimpl.GovernanceImpl(), []int{0, 1024})
	loadgentest.CheckSizes(t, echoimpl.ObservabilityImpl(), []int{0, 1024})
	loadgentest.Check(t, echoimpl.GRPCImpl())
	// HTTP/1.1 holds a connection per call: 1,000 calls of 100 KiB under
	// the race detector take too long to be a useful test.
	loadgentest.CheckSizes(t, echoimpl.ConnectImpl(), []int{0, 1024})
}

// BenchmarkRows runs rpcbench's Sluice rows in process: 100 callers (50
// per core), 1 KiB payloads; and the observability row's two halves
// alone. cpu-ns/op, the process's CPU time per call (client and server),
// is the figure to compare on a busy machine; allocs/op and B/op count
// both sides. Under valgrind --tool=callgrind (README, Performance), the
// instructions per call are a meter that the machine's load does not move.
func BenchmarkRows(b *testing.B) {
	for _, impl := range []loadgen.Impl{
		echoimpl.Impl(),
		echoimpl.ObservabilityImpl(),
		echoimpl.ObservabilityPartsImpl("sluice+metrics", true, false),
		echoimpl.ObservabilityPartsImpl("sluice+tracing", false, true),
	} {
		b.Run(impl.Name, func(b *testing.B) {
			call, stop, err := impl.Start(bytes.Repeat([]byte{'x'}, 1024))
			if err != nil {
				b.Fatal(err)
			}
			defer stop()
			for range 1000 { // connections up, caches warm
				if err := call(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.SetParallelism(50)
			b.ResetTimer()
			cpu := loadgen.ProcessCPU()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if err := call(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if c := loadgen.ProcessCPU(); c > 0 {
				b.ReportMetric(float64(c-cpu)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}
