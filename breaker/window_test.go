package breaker

import (
	"testing"
	"time"
)

func TestHistogramBins(t *testing.T) {
	prev := -1
	for _, d := range []time.Duration{
		0, time.Microsecond, 3 * time.Microsecond, 4 * time.Microsecond, 7 * time.Microsecond,
		100 * time.Microsecond, time.Millisecond, 9 * time.Millisecond, 10 * time.Millisecond,
		250 * time.Millisecond, time.Second, 30 * time.Second, 30 * time.Minute,
	} {
		i := histIndex(d)
		if i < prev || i >= histBins {
			t.Fatalf("histIndex(%v) = %d after %d", d, i, prev)
		}
		prev = i
		v := histValue(i)
		if d >= 4*time.Microsecond {
			if rel := float64(v-d) / float64(d); rel < -0.125 || rel > 0.125 {
				t.Errorf("histValue(histIndex(%v)) = %v, off by %.1f%%", d, v, 100*rel)
			}
		} else if v != d.Truncate(time.Microsecond) {
			t.Errorf("histValue(histIndex(%v)) = %v", d, v)
		}
	}
	if i := histIndex(-time.Second); i != 0 {
		t.Errorf("negative latency bin = %d", i)
	}
	if i := histIndex(100 * time.Hour); i != histBins-1 {
		t.Errorf("huge latency bin = %d, want last", i)
	}
}

func TestP95(t *testing.T) {
	w := newWindow(10*time.Second, 10)
	now := time.Unix(1000, 0)
	e := w.epochOf(now)
	b, _ := w.slot(e)
	for i := range 100 {
		b.hist[histIndex(time.Duration(i+1)*time.Millisecond)].Add(1)
	}
	p, n := w.p95(e)
	if n != 100 || p < 84*time.Millisecond || p > 106*time.Millisecond {
		t.Errorf("p95 = %v over %d, want about 95ms over 100", p, n)
	}
	if p, n := w.p95(e + 10); n != 0 || p != 0 {
		t.Errorf("expired window: p95 = %v over %d", p, n)
	}
}
