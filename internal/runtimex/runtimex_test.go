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
// at the same time get different ids. A goroutine can be preempted and
// moved between its id read and the others', so a try may see a repeat;
// one try of ten with distinct ids shows the ids tell Ps apart.
func TestP(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	for try := 0; try < 10; try++ {
		ids := readTogether(procs)
		seen := map[int]bool{}
		for _, p := range ids {
			if p < 0 || p >= procs {
				t.Fatalf("P() = %d, want 0 <= p < %d", p, procs)
			}
			seen[p] = true
		}
		if len(seen) == procs {
			return
		}
	}
	t.Errorf("in ten tries, %d goroutines running at once never got %d different ids", procs, procs)
}

// readTogether returns the ids P gives n goroutines that spin together, so
// that each holds a P of its own as it reads its id (none leaves before
// all have read theirs).
func readTogether(n int) []int {
	ids := make([]int, n)
	var started, read atomic.Int32
	var wg sync.WaitGroup
	deadline := time.Now().Add(time.Second)
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Add(1)
			for started.Load() < int32(n) && time.Now().Before(deadline) {
			}
			ids[g] = P()
			read.Add(1)
			for read.Load() < int32(n) && time.Now().Before(deadline) {
			}
		}()
	}
	wg.Wait()
	return ids
}

func BenchmarkP(b *testing.B) {
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			P()
		}
	})
}
