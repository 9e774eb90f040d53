// Package loadgen runs RPC implementations under the same closed-loop load
// and measures throughput, latency percentiles, allocations and CPU per call.
//
// An implementation is an Impl: a name and a Start function that brings up
// an in-process server on 127.0.0.1 plus a client to it. Run drives it:
//
//	res, err := loadgen.Run(impl, loadgen.Config{Concurrency: 100, PayloadSize: 1024, Duration: 10 * time.Second})
//	loadgen.PrintTable(os.Stdout, []loadgen.Result{res})
//
// Client and server share the process, so allocations and CPU per call are
// the sum of both sides.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Impl is one RPC implementation under test.
type Impl struct {
	// Name labels the result row, e.g. "grpc".
	Name string
	// Start starts a server on 127.0.0.1:0 and a client to it. call performs
	// one echo of payload, checks the reply (length and content) and returns
	// an error if it does not match; it is called from many goroutines at
	// once and must return promptly once ctx is done. stop closes client and
	// server and must release every goroutine either started. Run calls stop
	// exactly once, after the last call has returned.
	Start func(payload []byte) (call func(ctx context.Context) error, stop func(), err error)
}

// Config sets the load. The zero value is valid.
type Config struct {
	// Concurrency is the number of goroutines calling in a closed loop.
	// Zero means 100.
	Concurrency int
	// PayloadSize is the payload length in bytes. Zero means an empty payload.
	PayloadSize int
	// Duration is how long calls are measured. Zero means 10s.
	Duration time.Duration
	// Warmup is how long calls run before measuring starts. Zero means none.
	Warmup time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Concurrency == 0 {
		c.Concurrency = 100
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	switch {
	case c.Concurrency < 0:
		return c, fmt.Errorf("loadgen: concurrency %d < 0", c.Concurrency)
	case c.PayloadSize < 0:
		return c, fmt.Errorf("loadgen: payload size %d < 0", c.PayloadSize)
	case c.Duration < 0:
		return c, fmt.Errorf("loadgen: duration %v < 0", c.Duration)
	case c.Warmup < 0:
		return c, fmt.Errorf("loadgen: warmup %v < 0", c.Warmup)
	}
	return c, nil
}

// Result is what Run measured for one Impl. Per-call figures are divided by
// Calls+Errors, the calls that completed inside the measured window.
type Result struct {
	Name string `json:"name"`
	// Calls is the number of successful calls completed while measuring.
	Calls int64 `json:"calls"`
	// Errors is the number of failed calls completed while measuring.
	Errors int64 `json:"errors"`
	// QPS is Calls per second of the measured window.
	QPS float64 `json:"qps"`
	// P50, P99 and P999 are latency percentiles of successful calls.
	P50  time.Duration `json:"p50_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	// AllocsPerCall is heap allocations (client and server) per call.
	AllocsPerCall float64 `json:"allocs_per_call"`
	// CPUPerCall is process CPU time (user+system) per call.
	CPUPerCall time.Duration `json:"cpu_per_call_ns"`
	// FirstError is the text of the first error seen while measuring.
	FirstError string `json:"first_error,omitempty"`
}

// ErrStart wraps an error returned by Impl.Start; test with errors.Is.
var ErrStart = errors.New("loadgen: start")

// waitGrace is how long Run waits for in-flight calls after the window
// closes before it cancels their context.
const waitGrace = 5 * time.Second

const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseDone
)

type worker struct {
	hist     Histogram
	calls    int64
	errs     int64
	firstErr error
}

func (w *worker) loop(ctx context.Context, call func(context.Context) error, phase *atomic.Int32) {
	for {
		start := time.Now()
		err := call(ctx)
		d := time.Since(start)
		switch phase.Load() {
		case phaseWarmup:
			continue
		case phaseDone:
			return
		}
		if err != nil {
			if w.errs == 0 {
				w.firstErr = err
			}
			w.errs++
			continue
		}
		w.calls++
		w.hist.Record(d)
	}
}

type snapshot struct {
	wall    time.Time
	mallocs uint64
	cpu     time.Duration
}

func takeSnapshot() snapshot {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return snapshot{wall: time.Now(), mallocs: ms.Mallocs, cpu: ProcessCPU()}
}

// Payload returns the n-byte payload Run sends: a fixed, non-repeating-byte
// pattern, so that a reply with shifted or foreign bytes fails the check.
func Payload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>8 + 1)
	}
	return p
}

// Run collects garbage, starts impl, runs cfg.Concurrency callers for
// cfg.Warmup and then for cfg.Duration while measuring, stops impl and
// returns the measurements. Only calls that complete inside the measured
// window count. An error from Start is returned wrapped in ErrStart.
func Run(impl Impl, cfg Config) (Result, error) {
	res := Result{Name: impl.Name}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return res, err
	}
	if impl.Start == nil {
		return res, fmt.Errorf("%w %s: nil Start", ErrStart, impl.Name)
	}
	runtime.GC()
	call, stop, err := impl.Start(Payload(cfg.PayloadSize))
	if err != nil {
		return res, fmt.Errorf("%w %s: %w", ErrStart, impl.Name, err)
	}

	workers := make([]*worker, cfg.Concurrency)
	for i := range workers {
		workers[i] = new(worker)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var phase atomic.Int32
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.loop(ctx, call, &phase) })
	}

	time.Sleep(cfg.Warmup)
	before := takeSnapshot()
	phase.Store(phaseMeasure)
	time.Sleep(cfg.Duration)
	phase.Store(phaseDone)
	after := takeSnapshot()

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	grace := time.NewTimer(waitGrace)
	select {
	case <-done:
	case <-grace.C:
		cancel()
		<-done
	}
	grace.Stop()
	cancel()
	stop()

	var hist Histogram
	for _, w := range workers {
		hist.Merge(&w.hist)
		res.Calls += w.calls
		res.Errors += w.errs
		if w.firstErr != nil && res.FirstError == "" {
			res.FirstError = w.firstErr.Error()
		}
	}
	elapsed := after.wall.Sub(before.wall)
	res.QPS = float64(res.Calls) / elapsed.Seconds()
	res.P50 = hist.Quantile(0.50)
	res.P99 = hist.Quantile(0.99)
	res.P999 = hist.Quantile(0.999)
	if n := res.Calls + res.Errors; n > 0 {
		res.AllocsPerCall = float64(after.mallocs-before.mallocs) / float64(n)
		res.CPUPerCall = (after.cpu - before.cpu) / time.Duration(n)
	}
	return res, nil
}
