package runtimex

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestP checks that the linknamed runtime functions still do what the
// package says: P returns an id below GOMAXPROCS, and goroutines running
// at the same time get different ids.
func TestP(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	ids := make([]int, procs)
	var started, read atomic.Int32
	var wg sync.WaitGroup
	deadline := time.Now().Add(5 * time.Second)
	for g := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// All procs goroutines spin together, so each holds a P of
			// its own while it reads the id, and none leaves before all
			// have read theirs.
			started.Add(1)
			for started.Load() < int32(procs) && time.Now().Before(deadline) {
			}
			ids[g] = P()
			read.Add(1)
			for read.Load() < int32(procs) && time.Now().Before(deadline) {
			}
		}()
	}
	wg.Wait()
	if time.Now().After(deadline) {
		t.Skip("the goroutines did not all run at once within 5s")
	}
	seen := map[int]bool{}
	for _, p := range ids {
		if p < 0 || p >= procs {
			t.Errorf("P() = %d, want 0 <= p < %d", p, procs)
		}
		if seen[p] {
			t.Errorf("P() = %d for two goroutines running at once (ids %v)", p, ids)
		}
		seen[p] = true
	}
}

func BenchmarkP(b *testing.B) {
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			P()
		}
	})
}
