package loadgen

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// counterImpl calls in-process; every third call fails. It counts calls and
// flags any call made after stop.
type counterImpl struct {
	started, stopped, total, afterStop atomic.Int64
	payloadLen                         atomic.Int64
}

func (c *counterImpl) impl() Impl {
	return Impl{Name: "counter", Start: func(payload []byte) (func(context.Context) error, func(), error) {
		c.started.Add(1)
		c.payloadLen.Store(int64(len(payload)))
		bg := make(chan struct{}) // a server-like goroutine stop must release
		go func() { <-bg }()
		call := func(ctx context.Context) error {
			if c.stopped.Load() > 0 {
				c.afterStop.Add(1)
			}
			n := c.total.Add(1)
			time.Sleep(20 * time.Microsecond)
			if n%3 == 0 {
				return errors.New("counter: every third call fails")
			}
			return nil
		}
		stop := func() { c.stopped.Add(1); close(bg) }
		return call, stop, nil
	}}
}

func TestRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	var c counterImpl
	res, err := Run(c.impl(), Config{Concurrency: 8, PayloadSize: 100, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if c.started.Load() != 1 || c.stopped.Load() != 1 {
		t.Errorf("started %d, stopped %d times, want 1 and 1", c.started.Load(), c.stopped.Load())
	}
	if n := c.afterStop.Load(); n != 0 {
		t.Errorf("%d calls after stop", n)
	}
	if c.payloadLen.Load() != 100 {
		t.Errorf("payload length %d, want 100", c.payloadLen.Load())
	}
	measured := res.Calls + res.Errors
	if res.Calls == 0 || measured >= c.total.Load() {
		t.Errorf("Calls+Errors = %d, want > 0 and < all calls made (%d, warmup included)", measured, c.total.Load())
	}
	if ratio := float64(res.Errors) / float64(measured); ratio < 0.3 || ratio > 0.37 {
		t.Errorf("errors %d of %d calls, want about a third", res.Errors, measured)
	}
	if !strings.Contains(res.FirstError, "every third call") {
		t.Errorf("FirstError = %q", res.FirstError)
	}
	// QPS is Calls over the measured window: never much shorter than the
	// 0.3 s asked for, and longer only when a loaded machine is slow to
	// stop the callers.
	if most := float64(res.Calls) / 0.3; res.QPS > most*1.05 || res.QPS < most/10 {
		t.Errorf("QPS = %.0f, want Calls over a window of 0.3 s to 3 s: %.0f to %.0f", res.QPS, most/10, most)
	}
	if res.P50 < 20*time.Microsecond || res.P50 > res.P99 || res.P99 > res.P999 {
		t.Errorf("percentiles p50=%v p99=%v p999=%v: want 20µs <= p50 <= p99 <= p999", res.P50, res.P99, res.P999)
	}
	if res.CPUPerCall <= 0 {
		t.Errorf("CPUPerCall = %v, want > 0", res.CPUPerCall)
	}
}

func TestRunStartError(t *testing.T) {
	boom := errors.New("boom")
	_, err := Run(Impl{Name: "x", Start: func([]byte) (func(context.Context) error, func(), error) {
		return nil, nil, boom
	}}, Config{Duration: time.Millisecond})
	if !errors.Is(err, ErrStart) || !errors.Is(err, boom) {
		t.Errorf("Run error = %v, want ErrStart wrapping boom", err)
	}
}

func TestRunBadConfig(t *testing.T) {
	var c counterImpl
	for _, cfg := range []Config{{Concurrency: -1}, {PayloadSize: -1}, {Duration: -1}, {Warmup: -1}} {
		if _, err := Run(c.impl(), cfg); err == nil {
			t.Errorf("Run(%+v) succeeded, want error", cfg)
		}
	}
	if c.started.Load() != 0 {
		t.Errorf("Start called for invalid config")
	}
}

func TestPrintTable(t *testing.T) {
	var buf bytes.Buffer
	PrintTable(&buf, []Result{{Name: "grpc", QPS: 61234.4, P50: 1520 * time.Microsecond, P99: 4 * time.Millisecond, P999: 12345 * time.Microsecond, AllocsPerCall: 120.25, CPUPerCall: 31500 * time.Nanosecond}})
	out := buf.String()
	for _, s := range []string{"impl", "QPS", "p999", "allocs/call", "CPU µs/call", "grpc", "61234", "1.52ms", "4.00ms", "12.3ms", "120.2", "31.5"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0ns", 999: "999ns", 1500: "1.50µs", 81234: "81.2µs", 812345: "812µs",
		1520 * time.Microsecond: "1.52ms", 2500 * time.Millisecond: "2.50s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%d) = %q, want %q", int64(d), got, want)
		}
	}
}
