package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/observe/metrics"
)

type reply struct{}

func okEndpoint(ctx context.Context, req, resp any) error {
	if r, ok := resp.(*endpoint.Reply); ok {
		r.Msg = reply{}
	}
	return nil
}

func newBenchMetrics(b *testing.B) *metrics.Metrics {
	m, err := metrics.New(metrics.Config{NoRuntimeMetrics: true})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func benchCall(b *testing.B, side callinfo.Side, ep endpoint.Endpoint) {
	carrier := &callinfo.Carrier{Context: context.Background()}
	info := &carrier.Info
	info.Side = side
	info.Service = "sluice.examples.echo.v1.EchoService"
	info.Method = "Echo"
	info.Caller = "frontend"
	info.Peer = "10.0.0.7:8080"
	info.ReceivedBytes, info.SentBytes = 120, 80
	// As the framework fills them: the server sets Start, the client
	// Start and, once the reply is in, End.
	info.Attempt = 1
	info.Start = time.Now()
	if side == callinfo.Client {
		info.End = info.Start.Add(time.Millisecond)
	}
	var r endpoint.Reply
	ep(carrier, nil, &r) // warm the caches
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := ep(carrier, nil, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// The hot path of a server call: find the children, count, observe.
func BenchmarkServer(b *testing.B) {
	m := newBenchMetrics(b)
	benchCall(b, callinfo.Server, m.Server()(okEndpoint))
}

func BenchmarkClient(b *testing.B) {
	m := newBenchMetrics(b)
	benchCall(b, callinfo.Client, m.Client()(okEndpoint))
}

// The baseline the two above are measured against.
func BenchmarkNone(b *testing.B) {
	benchCall(b, callinfo.Server, okEndpoint)
}

func BenchmarkServerParallel(b *testing.B) {
	m := newBenchMetrics(b)
	ep := m.Server()(okEndpoint)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		carrier := &callinfo.Carrier{Context: context.Background()}
		info := &carrier.Info
		info.Side, info.Service, info.Method, info.Caller = callinfo.Server, "svc", "Echo", "frontend"
		var r endpoint.Reply
		for pb.Next() {
			ep(carrier, nil, &r)
		}
	})
}

func BenchmarkRetryHook(b *testing.B) {
	m := newBenchMetrics(b)
	m.Retry("svc", "Echo")
	b.ReportAllocs()
	for b.Loop() {
		m.Retry("svc", "Echo")
	}
}
