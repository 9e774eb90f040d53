package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// within reports whether got is within rel (relative) of want.
func within(got, want time.Duration, rel float64) bool {
	return math.Abs(float64(got-want)) <= rel*float64(want)
}

func TestBucketRoundTrip(t *testing.T) {
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 257, 1000, 1 << 20, 123456789, maxValue} {
		i := bucketOf(v)
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of [0,%d)", v, i, numBuckets)
		}
		low, width := bucketRange(i)
		if v < low || v >= low+width {
			t.Errorf("value %d in bucket %d = [%d,%d)", v, i, low, low+width)
		}
		if low >= 2*subCount && float64(width)/float64(low) > 1.0/subCount {
			t.Errorf("bucket %d width %d too wide for low %d", i, width, low)
		}
	}
	// Buckets tile the value range with no gaps or overlaps.
	for i := 1; i < numBuckets; i++ {
		pl, pw := bucketRange(i - 1)
		if l, _ := bucketRange(i); l != pl+pw {
			t.Fatalf("bucket %d starts at %d, previous ends at %d", i, l, pl+pw)
		}
	}
}

func TestQuantile(t *testing.T) {
	uniform := make([]time.Duration, 100000) // 1µs..100ms
	for i := range uniform {
		uniform[i] = time.Duration(i+1) * time.Microsecond
	}
	r := rand.New(rand.NewPCG(1, 2))
	lognormal := make([]time.Duration, 50000)
	for i := range lognormal {
		lognormal[i] = time.Duration(math.Exp(r.NormFloat64()*1.5+math.Log(200e3))) + 1
	}
	bimodal := make([]time.Duration, 0, 10000)
	for i := range 10000 {
		if i%100 == 0 { // 1% slow
			bimodal = append(bimodal, 50*time.Millisecond)
		} else {
			bimodal = append(bimodal, 300*time.Microsecond)
		}
	}
	tests := []struct {
		name   string
		values []time.Duration
		want   map[float64]time.Duration // nil: compute exactly from sorted values
	}{
		{"uniform", uniform, map[float64]time.Duration{
			0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 0.999: 99900 * time.Microsecond,
		}},
		{"single", []time.Duration{1234567}, map[float64]time.Duration{0.5: 1234567, 0.99: 1234567, 0.999: 1234567}},
		{"small exact", []time.Duration{5, 1, 3, 2, 4}, map[float64]time.Duration{0.2: 1, 0.5: 3, 0.99: 5}},
		{"bimodal", bimodal, map[float64]time.Duration{
			0.5: 300 * time.Microsecond, 0.98: 300 * time.Microsecond, 0.99: 300 * time.Microsecond, 0.995: 50 * time.Millisecond,
		}},
		{"lognormal", lognormal, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tt.values {
				h.Record(v)
			}
			want := tt.want
			if want == nil {
				sorted := slices.Clone(tt.values)
				slices.Sort(sorted)
				want = map[float64]time.Duration{}
				for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
					want[q] = sorted[int(math.Ceil(q*float64(len(sorted))))-1]
				}
			}
			for q, w := range want {
				if got := h.Quantile(q); !within(got, w, 0.01) {
					t.Errorf("Quantile(%v) = %v, want %v ±1%%", q, got, w)
				}
			}
			if got, want := h.Count(), uint64(len(tt.values)); got != want {
				t.Errorf("Count = %d, want %d", got, want)
			}
			if got, want := h.Max(), slices.Max(tt.values); got != want {
				t.Errorf("Max = %v, want %v", got, want)
			}
			if got, want := h.Min(), slices.Min(tt.values); got != want {
				t.Errorf("Min = %v, want %v", got, want)
			}
		})
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if got := h.Quantile(0.99); got != 0 {
		t.Errorf("empty Quantile = %v, want 0", got)
	}
	h.Record(-5)
	h.Record(time.Duration(math.MaxInt64))
	if got := h.Quantile(0); got != 0 {
		t.Errorf("Quantile(0) = %v, want 0 (negative clamped)", got)
	}
	if got := h.Quantile(1); got != maxValue {
		t.Errorf("Quantile(1) = %v, want clamp %v", got, time.Duration(maxValue))
	}
}

func TestMerge(t *testing.T) {
	var a, b, all Histogram
	for i := range 1000 {
		d := time.Duration(i*i) * time.Nanosecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(new(Histogram))
	if m != all {
		t.Errorf("merged histogram differs from one fed everything")
	}
}

func TestRecordAllocs(t *testing.T) {
	h := new(Histogram)
	if n := testing.AllocsPerRun(1000, func() { h.Record(1234 * time.Microsecond) }); n != 0 {
		t.Errorf("Record allocates %v times", n)
	}
}
