package weakmap

import (
	"runtime"
	"testing"
)

type state struct {
	n    int
	next *state // a pointer field keeps it out of the tiny allocator
}

func TestGetKeepsLiveValues(t *testing.T) {
	var m Map[state]
	a := m.Get("a", func() *state { return &state{n: 1} })
	b := m.Get("b", func() *state { return &state{n: 2} })
	runtime.GC()
	m.Sweep()
	if got := m.Get("a", func() *state { return &state{n: 9} }); got != a {
		t.Fatalf("live value for a replaced: %+v", got)
	}
	if m.Len() != 2 {
		t.Fatalf("Len = %d, want 2", m.Len())
	}
	runtime.KeepAlive(b)
}

func TestSweepDropsCollected(t *testing.T) {
	var m Map[state]
	keep := m.Get("keep", func() *state { return &state{n: 1} })
	m.Get("gone", func() *state { return &state{n: 2} })
	runtime.GC()
	m.Sweep()
	if m.Len() != 1 {
		t.Fatalf("Len = %d after sweep, want 1", m.Len())
	}
	if got := m.Get("gone", func() *state { return &state{n: 3} }); got.n != 3 {
		t.Fatalf("collected value not recreated: n = %d", got.n)
	}
	runtime.KeepAlive(keep)
}
