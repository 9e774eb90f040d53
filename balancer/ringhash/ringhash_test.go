package ringhash

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/balancer/balancertest"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

const key = "x-user-id"

func mustNew(t testing.TB, cfg Config) *Builder {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSuite(t *testing.T) { balancertest.Suite(t, mustNew(t, Config{Key: key})) }

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg     Config
		wantErr bool
	}{
		{Config{Key: key}, false},
		{Config{Key: " X-User-ID ", Points: 10, MaxPoints: 1000}, false},
		{Config{}, true},
		{Config{Key: "  "}, true},
		{Config{Key: key, Points: -1}, true},
		{Config{Key: key, MaxPoints: -1}, true},
	} {
		_, err := New(tc.cfg)
		if (err != nil) != tc.wantErr {
			t.Errorf("New(%+v) = %v, want error %v", tc.cfg, err, tc.wantErr)
		}
		if err != nil && status.Code(err) != codes.InvalidArgument {
			t.Errorf("New(%+v): code %v, want InvalidArgument", tc.cfg, status.Code(err))
		}
	}
}

func ctxWith(v string) context.Context {
	return metadata.AppendToOutgoing(context.Background(), key, v)
}

// owners maps each of n keys to the address it picks.
func owners(t *testing.T, p balancer.Picker, n int) map[string]string {
	t.Helper()
	out := make(map[string]string, n)
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("user-%d", i)
		res, err := p.Pick(balancer.PickInfo{Ctx: ctxWith(k)})
		if err != nil {
			t.Fatal(err)
		}
		out[k] = res.Instance.Addr
	}
	return out
}

func TestStableKey(t *testing.T) {
	ins := balancertest.Instances(10)
	b := mustNew(t, Config{Key: key})
	p := b.Build(ins)
	first := owners(t, p, 1000)
	// Same picker, a new picker from a new Builder (another process), and
	// the same set in another order: every key lands where it did.
	shuffled := append([]discovery.Instance(nil), ins...)
	rand.New(rand.NewPCG(7, 7)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for name, q := range map[string]balancer.Picker{
		"same picker":     p,
		"another process": mustNew(t, Config{Key: "X-User-Id"}).Build(ins),
		"shuffled set":    b.Build(shuffled),
	} {
		again := owners(t, q, 1000)
		for k, addr := range first {
			if again[k] != addr {
				t.Fatalf("%s: %s went to %s, then %s", name, k, addr, again[k])
			}
		}
	}
}

func TestKeySources(t *testing.T) {
	p := mustNew(t, Config{Key: key}).Build(balancertest.Instances(10))
	want := owners(t, p, 1)["user-0"]
	for name, ctx := range map[string]context.Context{
		"NewOutgoingContext": metadata.NewOutgoingContext(context.Background(), metadata.Pairs("X-User-Id", "user-0", "other", "x")),
		"first value wins":   metadata.AppendToOutgoing(ctxWith("user-0"), key, "user-1"),
		"after other keys":   metadata.AppendToOutgoing(metadata.AppendToOutgoing(context.Background(), "a", "b"), key, "user-0"),
	} {
		for i := 0; i < 20; i++ {
			res, _ := p.Pick(balancer.PickInfo{Ctx: ctx})
			if res.Instance.Addr != want {
				t.Fatalf("%s: picked %s, want %s", name, res.Instance.Addr, want)
			}
		}
	}
}

func TestMinimalDisruption(t *testing.T) {
	ins := balancertest.Instances(10)
	b := mustNew(t, Config{Key: key})
	const n = 20000
	before := owners(t, b.Build(ins), n)
	gone := ins[3].Addr
	after := owners(t, b.Build(append(append([]discovery.Instance(nil), ins[:3]...), ins[4:]...)), n)
	moved := 0
	for k, addr := range before {
		if after[k] == addr {
			continue
		}
		if addr != gone {
			t.Fatalf("%s moved from %s to %s though %s stayed", k, addr, after[k], addr)
		}
		moved++
	}
	if share := float64(moved) / n; share < 0.05 || share > 0.15 {
		t.Fatalf("removing 1 of 10 instances moved %.1f%% of keys, want about 10%%", 100*share)
	}
	// And it comes back to exactly the old mapping.
	back := owners(t, b.Build(ins), n)
	for k, addr := range before {
		if back[k] != addr {
			t.Fatalf("%s: %s before, %s after the instance came back", k, addr, back[k])
		}
	}
}

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int
		tol     float64 // relative
	}{
		{"equal", []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0.25},
		{"weighted", []int{100, 200, 300}, 0.15},
		{"one light", []int{100, 100, 100, 10}, 0.35},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ins := balancertest.Instances(len(tc.weights))
			total := 0
			for i, w := range tc.weights {
				ins[i].Weight = w
				total += ins[i].EffectiveWeight()
			}
			const n = 50000
			count := map[string]int{}
			for _, addr := range owners(t, mustNew(t, Config{Key: key}).Build(ins), n) {
				count[addr]++
			}
			for _, in := range ins {
				want := float64(in.EffectiveWeight()) / float64(total)
				got := float64(count[in.Addr]) / n
				if d := (got - want) / want; d > tc.tol || d < -tc.tol {
					t.Errorf("%s (weight %d): %.3f of keys, want %.3f ± %.0f%%", in.Addr, in.EffectiveWeight(), got, want, 100*tc.tol)
				}
			}
		})
	}
}

func TestNoKeyIsRandom(t *testing.T) {
	ins := balancertest.Instances(4)
	p := mustNew(t, Config{Key: key}).Build(ins)
	count := map[string]int{}
	for _, ctx := range []context.Context{nil, context.Background(), metadata.AppendToOutgoing(context.Background(), "x-other", "1")} {
		for i := 0; i < 4000; i++ {
			res, _ := p.Pick(balancer.PickInfo{Ctx: ctx})
			count[res.Instance.Addr]++
		}
	}
	for _, in := range ins {
		if c := count[in.Addr]; c < 2000 || c > 4000 {
			t.Errorf("%s got %d of 12000 keyless picks, want about 3000", in.Addr, c)
		}
	}
}

func TestRingBounded(t *testing.T) {
	ins := balancertest.Instances(2000)
	ins[0].Weight = 1
	p := mustNew(t, Config{Key: key}).Build(ins).(*picker)
	if n := len(p.hashes); n > DefaultMaxPoints || n < DefaultMaxPoints/2 {
		t.Fatalf("ring of %d points, want at most %d and not far below", n, DefaultMaxPoints)
	}
	seen := map[int32]bool{}
	for _, o := range p.owners {
		seen[o] = true
	}
	if len(seen) != len(ins) {
		t.Fatalf("%d of %d instances own points", len(seen), len(ins))
	}
}

// TestRingIsFixed pins where keys land on a known set, so that a change
// to how points are placed (which would move users between instances on
// upgrade) cannot pass unnoticed.
func TestRingIsFixed(t *testing.T) {
	got := owners(t, mustNew(t, Config{Key: key}).Build(balancertest.Instances(5)), 8)
	for k, want := range map[string]string{
		"user-0": "10.0.0.1:8080",
		"user-1": "10.0.0.4:8080",
		"user-2": "10.0.0.4:8080",
		"user-3": "10.0.0.4:8080",
		"user-4": "10.0.0.1:8080",
		"user-5": "10.0.0.1:8080",
		"user-6": "10.0.0.3:8080",
		"user-7": "10.0.0.2:8080",
	} {
		if got[k] != want {
			t.Errorf("%s went to %s, want %s", k, got[k], want)
		}
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	p := mustNew(t, Config{Key: key}).Build(balancertest.Instances(100))
	for name, ctx := range map[string]context.Context{"key": ctxWith("user-1"), "no key": context.Background()} {
		if a := testing.AllocsPerRun(1000, func() { p.Pick(balancer.PickInfo{Ctx: ctx}) }); a != 0 {
			t.Errorf("Pick with %s: %v allocs, want 0", name, a)
		}
	}
}

func TestEmpty(t *testing.T) {
	_, err := mustNew(t, Config{Key: key}).Build(nil).Pick(balancer.PickInfo{Ctx: ctxWith("u")})
	if !errors.Is(err, balancer.ErrNoInstance) {
		t.Fatal(err)
	}
}
