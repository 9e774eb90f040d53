package breaker_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/breaker"
	"github.com/sluicerpc/sluice/callinfo"
)

func benchBreaker(b *testing.B, mode breaker.Mode) *breaker.Breaker {
	br, err := breaker.New("bench", breaker.Config{Mode: mode})
	if err != nil {
		b.Fatal(err)
	}
	return br
}

func BenchmarkAllowRecord(b *testing.B) {
	for _, mode := range []breaker.Mode{breaker.Classic, breaker.SRE} {
		b.Run(mode.String(), func(b *testing.B) {
			br := benchBreaker(b, mode)
			b.ReportAllocs()
			for b.Loop() {
				tok, err := br.Allow()
				if err == nil {
					br.Record(tok, nil, time.Millisecond)
				}
			}
		})
	}
}

// BenchmarkAllowRecordAt is Allow+Record without the breaker's own clock
// read: the caller measured the latency and passes the end time.
func BenchmarkAllowRecordAt(b *testing.B) {
	br := benchBreaker(b, breaker.Classic)
	now := time.Now()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tok, err := br.Allow()
			if err == nil {
				br.RecordAt(tok, nil, time.Millisecond, now)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				tok, err := br.Allow()
				if err == nil {
					br.RecordAt(tok, nil, time.Millisecond, now)
				}
			}
		})
	})
}

// BenchmarkTimeNow is the price of one clock read on this machine, for
// reading the other numbers.
func BenchmarkTimeNow(b *testing.B) {
	var sink int64
	for b.Loop() {
		sink += time.Now().UnixNano()
	}
	_ = sink
}

func BenchmarkAllowRecordParallel(b *testing.B) {
	for _, mode := range []breaker.Mode{breaker.Classic, breaker.SRE} {
		b.Run(mode.String(), func(b *testing.B) {
			br := benchBreaker(b, mode)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tok, err := br.Allow()
					if err == nil {
						br.Record(tok, nil, time.Millisecond)
					}
				}
			})
		})
	}
}

// BenchmarkMiddleware is the breaker middleware on a call. With "call
// times", the call carries its Start and End as the client records them,
// and the middleware reads no clock of its own: this is the client's path.
// Without them it reads the clock twice.
func BenchmarkMiddleware(b *testing.B) {
	now := time.Now()
	b.Run("call times", func(b *testing.B) {
		benchMiddleware(b, &callinfo.Info{Service: "pkg.Order", Method: "Get", Start: now, End: now.Add(time.Millisecond)})
	})
	b.Run("own clock", func(b *testing.B) {
		benchMiddleware(b, &callinfo.Info{Service: "pkg.Order", Method: "Get"})
	})
}

func benchMiddleware(b *testing.B, info *callinfo.Info) {
	set, err := breaker.NewSet(breaker.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ep := breaker.Middleware(set)(func(context.Context, any, any) error { return nil })
	ctx := callinfo.NewContext(context.Background(), info)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = ep(ctx, nil, nil)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = ep(ctx, nil, nil)
			}
		})
	})
}
