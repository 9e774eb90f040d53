package random_test

import (
	"math"
	"testing"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/balancer/balancertest"
	"github.com/sluicerpc/sluice/balancer/random"
)

func TestSuite(t *testing.T) { balancertest.Suite(t, random.Builder{}) }

// TestShares draws 200k picks and wants every instance's share within 5%
// (relative) of its weight's share. The smallest share here is 1/15, whose
// standard deviation over 200k draws is 1.3% of it: a failure is a bug,
// not bad luck.
func TestShares(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int
	}{
		{"equal", []int{0, 0, 0, 0}},
		{"one to five", []int{1, 2, 3, 4, 5}},
		{"canary", []int{90, 10}},
		{"default next to explicit", []int{0, 300, 200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ins := balancertest.Instances(len(tc.weights))
			total := 0
			for i, w := range tc.weights {
				ins[i].Weight = w
				total += ins[i].EffectiveWeight()
			}
			p := random.Builder{}.Build(ins)
			const n = 200000
			count := map[string]int{}
			for i := 0; i < n; i++ {
				res, err := p.Pick(balancer.PickInfo{})
				if err != nil {
					t.Fatal(err)
				}
				count[res.Instance.Addr]++
			}
			for _, in := range ins {
				want := float64(in.EffectiveWeight()) / float64(total)
				got := float64(count[in.Addr]) / n
				if math.Abs(got-want) > 0.05*want {
					t.Errorf("%s (weight %d): share %.4f, want %.4f ± 5%%", in.Addr, in.EffectiveWeight(), got, want)
				}
			}
		})
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	ins := balancertest.Instances(100)
	for i := range ins {
		ins[i].Weight = i + 1
	}
	p := random.Builder{}.Build(ins)
	if a := testing.AllocsPerRun(1000, func() { p.Pick(balancer.PickInfo{}) }); a != 0 {
		t.Fatalf("Pick: %v allocs, want 0", a)
	}
}
