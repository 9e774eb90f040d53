// Package p2c picks instances by the power of two choices: each pick draws
// two distinct instances at random and takes the one with the lower cost,
//
//	cost = ewma × (inflight + 1) × 100 / weight
//
// where ewma is the instance's recent latency (an exponentially weighted
// moving average decayed by time, τ = 600 ms, as in Kratos and go-zero),
// inflight its calls not yet done, and weight its discovery.Instance
// EffectiveWeight (default 100, so weight 200 halves the cost).
//
//	b := p2c.New() // one per client: it keeps the latency stats
//	p := b.Build(instances)
//	res, err := p.Pick(balancer.PickInfo{Ctx: ctx})
//	...
//	res.Done(balancer.DoneInfo{Err: err, Latency: time.Since(start)})
//
// Three rules keep the choice honest:
//   - a call that fails with Unavailable, DeadlineExceeded, Internal,
//     Unknown, ResourceExhausted or DataLoss counts as taking at least 1 s,
//     so an instance that fails fast does not attract traffic;
//   - an instance with no reply yet costs 0 while nothing is in flight to it
//     and 1 s per call in flight otherwise, so a new instance gets one probe
//     call at a time until its first reply;
//   - an instance that loses the comparison but has not been picked for 1 s
//     is picked anyway (once), so a slow instance that recovered is noticed.
//
// Stats are kept per address by the Builder, so they survive new snapshots
// and subsets for as long as some picker still holds the instance.
package p2c

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/balancer/internal/weakmap"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

const (
	// tau is the EWMA time constant: a sample's weight is 1-exp(-Δt/τ),
	// Δt being the time since the previous sample.
	tau = 600 * time.Millisecond
	// penalty is the least latency a failed call counts as, and the cost
	// per in-flight call of an instance with no reply yet.
	penalty = time.Second
	// forcePick is how long an instance may go unpicked before it is
	// picked even though it lost the comparison.
	forcePick = time.Second
	// stampGrain is the resolution of the time Pick sees; see clock.
	stampGrain = time.Millisecond
)

// Builder builds P2C pickers. It keeps each instance's stats, shared by
// every picker it builds; use one Builder per client (or share one between
// clients: stats are keyed by address). A Builder must not be copied.
type Builder struct {
	stats weakmap.Map[stats]
	once  sync.Once
	clk   *clock
	// now reads a monotonic clock; nil means the real one. Tests set it
	// before the first Build.
	now func() time.Duration
}

// New returns a Builder.
func New() *Builder { return &Builder{} }

// Build implements balancer.Builder. Instances that were in an earlier
// picker of b keep their stats.
func (b *Builder) Build(instances []discovery.Instance) balancer.Picker {
	b.once.Do(b.init)
	b.stats.Sweep()
	p := &picker{instances: instances, nodes: make([]node, len(instances)), clk: b.clk}
	for i := range instances {
		p.nodes[i] = node{
			st:    b.stats.Get(instances[i].Addr, b.newStats),
			scale: float64(discovery.DefaultWeight) / float64(instances[i].EffectiveWeight()),
		}
	}
	return p
}

func (b *Builder) init() {
	b.clk = &clock{start: time.Now(), fake: b.now}
	b.clk.coarse.Store(int64(b.clk.read()))
}

func (b *Builder) newStats() *stats {
	s := &stats{clk: b.clk}
	s.picked.Store(b.clk.coarse.Load())
	s.done = s.observe
	return s
}

// clock is a Builder's time. Reading the real clock costs more than the
// rest of a pick, so only Done reads it (it needs the time between samples)
// and publishes what it read, to stampGrain, as the coarse time Pick uses.
type clock struct {
	start  time.Time
	fake   func() time.Duration // tests
	coarse atomic.Int64
}

func (c *clock) read() time.Duration {
	if c.fake != nil {
		return c.fake()
	}
	return time.Since(c.start)
}

// at is the clock's reading for end (the caller's end-of-call time), or
// for now when end is zero or the clock is a test's.
func (c *clock) at(end time.Time) int64 {
	if end.IsZero() || c.fake != nil {
		return c.now()
	}
	now := int64(end.Sub(c.start))
	if now-c.coarse.Load() >= int64(stampGrain) {
		c.coarse.Store(now)
	}
	return now
}

func (c *clock) now() int64 {
	now := int64(c.read())
	if now-c.coarse.Load() >= int64(stampGrain) {
		c.coarse.Store(now)
	}
	return now
}

// stats is one instance's load, updated with atomics only.
type stats struct {
	ewma     atomic.Int64 // latency in ns; 0 until the first reply
	stamp    atomic.Int64 // time of the last sample
	inflight atomic.Int64
	picked   atomic.Int64 // time of the last pick, to within stampGrain
	clk      *clock
	// done is s.observe, made once so that Pick hands it out without
	// allocating.
	done func(balancer.DoneInfo)
	_    [16]byte // one stats per 64-byte cache line
}

// observe ends one call.
func (s *stats) observe(di balancer.DoneInfo) {
	s.inflight.Add(-1)
	if di.Err != nil && status.Code(di.Err) == codes.Canceled {
		return // a cancelled or unused call says nothing about the instance
	}
	lat := int64(di.Latency)
	if di.Err != nil && lat < int64(penalty) && penalized(di.Err) {
		lat = int64(penalty)
	}
	if lat <= 0 {
		lat = 1 // 0 means "no reply yet"
	}
	// Load-then-Store rather than atomic read-modify-writes: two Dones
	// racing may lose a sample, which an average can afford, and a Done
	// stays free of locked instructions besides the in-flight count.
	now := s.clk.at(di.End)
	last := s.stamp.Load()
	s.stamp.Store(now)
	old := s.ewma.Load()
	if old == 0 {
		s.ewma.Store(lat) // the first reply counts in full
		return
	}
	a := alpha(float64(now-last) * (1 / float64(tau)))
	s.ewma.Store(old + int64(a*float64(lat-old)))
}

// alpha returns 1-exp(-x), the weight of a sample x time constants after
// the previous one. Busy instances see small x; a short series serves them
// without calling math.Exp.
func alpha(x float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x < 0.1: // x - x²/2 + x³/6 - x⁴/24, error below x⁵/120 < 1e-7
		return x * (1 - x*(1.0/2-x*(1.0/6-x*(1.0/24))))
	}
	return -math.Expm1(-x)
}

// penalized reports whether a failed call says nothing good about the
// instance's latency: the instance (or the way to it) failed rather than
// answered.
func penalized(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal,
		codes.Unknown, codes.ResourceExhausted, codes.DataLoss:
		return true
	}
	return false
}

type node struct {
	st    *stats
	scale float64 // DefaultWeight / weight
}

// cost is ewma × (inflight+1) × scale; see the package comment.
func (n *node) cost() float64 {
	inflight := n.st.inflight.Load()
	ewma := n.st.ewma.Load()
	if ewma == 0 {
		return float64(penalty) * float64(inflight) * n.scale
	}
	return float64(ewma) * float64(inflight+1) * n.scale
}

type picker struct {
	instances []discovery.Instance
	nodes     []node
	clk       *clock
}

func (p *picker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	n := uint64(len(p.nodes))
	var i int
	switch n {
	case 0:
		return balancer.PickResult{}, balancer.ErrNoInstance
	case 1:
		i = 0
	default:
		// Two distinct indexes from one random draw: a in [0,n) from the
		// high half, b in [0,n-1) from the low half, shifted past a.
		r := rand.Uint64()
		a := int(((r >> 32) * n) >> 32)
		b := int(((r & math.MaxUint32) * (n - 1)) >> 32)
		if b >= a {
			b++
		}
		if p.nodes[b].cost() < p.nodes[a].cost() {
			a, b = b, a
		}
		i = a
		now := p.clk.coarse.Load()
		loser := p.nodes[b].st
		if last := loser.picked.Load(); now-last > int64(forcePick) && loser.picked.CompareAndSwap(last, now) {
			i = b
		} else if st := p.nodes[a].st; now != st.picked.Load() {
			st.picked.Store(now)
		}
	}
	st := p.nodes[i].st
	st.inflight.Add(1)
	return balancer.PickResult{Instance: &p.instances[i], Done: st.done}, nil
}
