package limit_test

import (
	"sync"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/limit"
)

func BenchmarkTokenBucket(b *testing.B) {
	tb := limit.NewTokenBucket(1e9, 1<<20, nil) // never empty: every call takes the CAS path
	b.ReportAllocs()
	for b.Loop() {
		tb.Allow()
	}
}

// BenchmarkTokenBucketAt is Allow with a time the caller read already:
// the bucket's own cost without the clock read.
func BenchmarkTokenBucketAt(b *testing.B) {
	tb := limit.NewTokenBucket(1e9, 1<<20, nil)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Nanosecond) // the refill keeps up: never empty
		if !tb.AllowAt(now) {
			b.Fatal("refused")
		}
	}
}

func BenchmarkTokenBucketParallel(b *testing.B) {
	tb := limit.NewTokenBucket(1e9, 1<<20, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tb.Allow()
		}
	})
}

func BenchmarkTokenBucketEmptyParallel(b *testing.B) {
	tb := limit.NewTokenBucket(1, 1, nil) // always empty: the rejecting path
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tb.Allow()
		}
	})
}

func BenchmarkConcurrency(b *testing.B) {
	c := limit.NewConcurrency(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		c.Acquire()
		c.Release()
	}
}

func benchLimiter(b *testing.B, shed bool) *limit.Limiter {
	cfg := limit.Config{
		Methods:        map[string]limit.Rate{"pkg.Svc/Get": {QPS: 1e9, Burst: 1 << 20}, "pkg.Svc/Put": {QPS: 1}},
		Callers:        map[string]limit.Rate{"web": {QPS: 1e9, Burst: 1 << 20}},
		MaxConcurrency: 1 << 20,
	}
	if shed {
		cfg.Shed = &limit.ShedConfig{}
	}
	l, err := limit.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return l
}

func BenchmarkMiddleware(b *testing.B) {
	for _, shed := range []bool{false, true} {
		name := "buckets+concurrency"
		if shed {
			name += "+shed"
		}
		b.Run(name, func(b *testing.B) {
			call := limit.Middleware(benchLimiter(b, shed))(ok)
			ctx, _ := serverCtx("pkg.Svc", "Get", "web")
			b.ReportAllocs()
			for b.Loop() {
				if err := call(ctx, nil, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			call := limit.Middleware(benchLimiter(b, shed))(ok)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx, _ := serverCtx("pkg.Svc", "Get", "web")
				for pb.Next() {
					if err := call(ctx, nil, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// TestMiddlewareRace runs calls through a Dynamic while it is updated; run
// with -race.
func TestMiddlewareRace(t *testing.T) {
	cfg := limit.Config{
		Methods:        map[string]limit.Rate{"pkg.Svc/Get": {QPS: 1000}},
		Callers:        map[string]limit.Rate{"web": {QPS: 1000}},
		MaxConcurrency: 8,
		Shed:           &limit.ShedConfig{},
	}
	d, err := limit.NewDynamic(cfg)
	if err != nil {
		t.Fatal(err)
	}
	call := d.Middleware()(ok)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				ctx, _ := serverCtx("pkg.Svc", "Get", "web")
				_ = call(ctx, nil, nil)
			}
		}()
	}
	for i := range 50 {
		cfg.MaxConcurrency = 4 + i%8
		if err := d.Update(cfg); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	// Every admitted call ended: the kept in-flight count is back to zero.
	if n := d.Limiter().InFlight(); n != 0 {
		t.Fatalf("%d calls in flight after all ended", n)
	}
}
