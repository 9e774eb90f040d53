package limit_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/limit"
)

// warm runs n calls of latency rt through s, all started at once, then moves
// the clock to the start of the next bucket (100ms long) so that the
// estimate includes them.
func warm(t *testing.T, s *limit.Shedder, clk *clock, n int, rt time.Duration) {
	t.Helper()
	toks := make([]limit.Token, n)
	for i := range toks {
		tok, err := s.Allow()
		if err != nil {
			t.Fatalf("warm-up call %d shed: %v", i, err)
		}
		toks[i] = tok
	}
	clk.Advance(rt)
	for _, tok := range toks {
		s.Done(tok)
	}
	clk.Advance(100*time.Millisecond - rt)
}

func newShedder(t *testing.T, clk *clock, cpu func() float64) *limit.Shedder {
	t.Helper()
	s, err := limit.NewShedder(limit.ShedConfig{
		Window:  config.Duration(time.Second),
		Buckets: 10,
		Clock:   clk,
		CPU:     cpu,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fill admits calls until the shedder refuses one, and returns the tokens.
func fill(s *limit.Shedder, most int) ([]limit.Token, error) {
	var toks []limit.Token
	for range most {
		tok, err := s.Allow()
		if err != nil {
			return toks, err
		}
		toks = append(toks, tok)
	}
	return toks, nil
}

func TestShedderSheds(t *testing.T) {
	clk := newClock()
	s := newShedder(t, clk, nil)
	// No estimate yet: nothing is shed, however many are in flight.
	toks, err := fill(s, 500)
	if err != nil {
		t.Fatalf("shed before any estimate: %v", err)
	}
	for _, tok := range toks {
		s.Done(tok)
	}
	clk.Advance(2 * time.Second) // those age out of the window
	if c := s.Capacity(); c != 0 {
		t.Fatalf("Capacity after a quiet window = %d, want 0", c)
	}
	// 50 calls of 20ms in a 100ms bucket: capacity = 50 × 20ms / 100ms = 10.
	warm(t, s, clk, 50, 20*time.Millisecond)
	if c := s.Capacity(); c != 10 {
		t.Fatalf("Capacity = %d, want 10", c)
	}
	toks, err = fill(s, 100)
	if !errors.Is(err, limit.ErrShed) || !errors.Is(err, limit.ErrLimited) {
		t.Fatalf("fill: %v, want ErrShed matching ErrLimited", err)
	}
	// Shed once more than capacity are in flight: the 12th call, with 11 in.
	if len(toks) != 11 {
		t.Fatalf("%d calls admitted, want 11 (shed when in-flight > 10)", len(toks))
	}
	// Recovers as calls end.
	s.Done(toks[0])
	if _, err := s.Allow(); err != nil {
		t.Fatalf("after one call ended: %v", err)
	}
	// The estimate ages out of the window: nothing is shed until a new one.
	clk.Advance(2 * time.Second)
	if c := s.Capacity(); c != 0 {
		t.Fatalf("Capacity after a quiet window = %d, want 0", c)
	}
	if _, err := fill(s, 50); err != nil {
		t.Fatalf("shed with no estimate: %v", err)
	}
}

func TestShedderLowerLatencyLowersCapacity(t *testing.T) {
	clk := newClock()
	s := newShedder(t, clk, nil)
	warm(t, s, clk, 50, 20*time.Millisecond) // capacity 10
	warm(t, s, clk, 10, 5*time.Millisecond)  // maxPass 50, minRT 5ms: capacity 3
	if c := s.Capacity(); c != 3 {
		t.Fatalf("Capacity = %d, want ceil(50 × 5ms / 100ms) = 3", c)
	}
}

func TestShedderCPUGating(t *testing.T) {
	var cpu atomic.Value
	cpu.Store(0.5)
	clk := newClock()
	// A 10s window, so the estimate outlives the 1.1s the steps take.
	s, err := limit.NewShedder(limit.ShedConfig{Clock: clk, CPU: func() float64 { return cpu.Load().(float64) }})
	if err != nil {
		t.Fatal(err)
	}
	warm(t, s, clk, 50, 20*time.Millisecond) // capacity 10
	// Keep 20 calls in flight, twice the capacity.
	for range 20 {
		if _, err := s.Allow(); err != nil {
			t.Fatalf("filling at low cpu: %v", err)
		}
	}

	steps := []struct {
		name    string
		cpu     float64
		advance time.Duration
		shed    bool
	}{
		{"low cpu: over capacity but admitted", 0.5, 0, false},
		{"high cpu: shed", 0.9, 0, true},
		{"at threshold: shed", 0.8, 0, true},
		{"low cpu within cool-down: still shed", 0.3, 500 * time.Millisecond, true},
		{"low cpu after cool-down: admitted", 0.3, 600 * time.Millisecond, false},
	}
	for _, st := range steps {
		cpu.Store(st.cpu)
		clk.Advance(st.advance)
		// Admitted calls stay in flight, so that no sample of their own
		// moves the estimate.
		_, err := s.Allow()
		if shed := err != nil; shed != st.shed {
			t.Fatalf("%s: shed = %v (%v)", st.name, shed, err)
		}
	}
}

func TestShedderConfigErrors(t *testing.T) {
	if _, err := limit.NewShedder(limit.ShedConfig{Buckets: -1}); err == nil || err.Error() != "limit: buckets must be >= 0, not -1" {
		t.Fatalf("NewShedder: %v", err)
	}
}

func TestMiddlewareShed(t *testing.T) {
	clk := newClock()
	l, err := limit.New(limit.Config{Shed: &limit.ShedConfig{Window: config.Duration(time.Second), Buckets: 10}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	mw := limit.Middleware(l)
	ctx, _ := serverCtx("pkg.Svc", "Get", "")
	// Warm up: 4 nested calls of 50ms each in one bucket: capacity ceil(4 × 50 / 100) = 2.
	var depth int
	var nest func() error
	nest = func() error {
		return mw(func(_ ctxT, _, _ any) error {
			depth++
			if depth < 4 {
				if err := nest(); err != nil {
					return err
				}
			} else {
				clk.Advance(50 * time.Millisecond)
			}
			return nil
		})(ctx, nil, nil)
	}
	if err := nest(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(50 * time.Millisecond)
	// Now 3 in flight > 2: the 4th is shed.
	depth = 0
	err = nest()
	if !errors.Is(err, limit.ErrLimited) {
		t.Fatalf("nested calls over capacity: %v, want shed", err)
	}
	if depth != 3 {
		t.Fatalf("shed at depth %d, want after 3 in flight", depth+1)
	}
}

type ctxT = context.Context
