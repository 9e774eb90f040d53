// Package ringhash picks instances by consistent hashing: calls that carry
// the same value of a metadata key (a user id, a tenant, a session) go to
// the same instance while the instance set holds still, and when one of n
// instances leaves or joins only about 1/n of the values move.
//
//	b, err := ringhash.New(ringhash.Config{Key: "x-user-id"})
//	...
//	client.WithBalancer(b)
//	ctx = metadata.AppendToOutgoing(ctx, "x-user-id", "42")
//
// Each instance owns points on a ring of 64-bit hashes, about Points of
// them for an instance of average weight (discovery.Instance
// EffectiveWeight) and proportionally more or fewer for heavier or lighter
// ones; a call goes to the owner of the first point at or after the hash
// of its key's first outgoing value. The hash (FNV-1a 64 with the murmur3
// finalizer) and the placement of points are fixed, so every process maps
// a value to the same instance of the same set, whatever the order of its
// snapshot. Changing either would move users between instances on
// upgrade; tests pin both.
//
// A call without the key (or without a context) goes to a random point of
// the ring, that is to a random instance in proportion to its weight.
package ringhash

import (
	"context"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/internal/stablehash"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// Config configures a ring hash Builder.
type Config struct {
	// Key is the outgoing metadata key whose first value is hashed, such
	// as "x-user-id". Required; matched lower-case, as metadata keys are.
	Key string
	// Points is how many ring points an instance of average weight gets.
	// More points spread values more evenly and cost memory and Build
	// time. Zero means 160.
	Points int
	// MaxPoints bounds the ring; with many instances each gets fewer
	// points (at least one). Zero means 100000.
	MaxPoints int
}

// Defaults for the zero fields of Config.
const (
	DefaultPoints    = 160
	DefaultMaxPoints = 100000
)

// Builder builds ring hash pickers.
type Builder struct {
	cfg Config
}

// New returns a Builder, or an error naming the Config field at fault.
func New(cfg Config) (*Builder, error) {
	cfg.Key = strings.ToLower(strings.TrimSpace(cfg.Key))
	switch {
	case cfg.Key == "":
		return nil, status.Err(codes.InvalidArgument, "ringhash: Config.Key is required (the metadata key to hash)")
	case cfg.Points < 0:
		return nil, status.Errorf(codes.InvalidArgument, "ringhash: Config.Points is %d, want 0 (default %d) or more", cfg.Points, DefaultPoints)
	case cfg.MaxPoints < 0:
		return nil, status.Errorf(codes.InvalidArgument, "ringhash: Config.MaxPoints is %d, want 0 (default %d) or more", cfg.MaxPoints, DefaultMaxPoints)
	}
	if cfg.Points == 0 {
		cfg.Points = DefaultPoints
	}
	if cfg.MaxPoints == 0 {
		cfg.MaxPoints = DefaultMaxPoints
	}
	return &Builder{cfg: cfg}, nil
}

// Build implements balancer.Builder.
func (b *Builder) Build(instances []discovery.Instance) balancer.Picker {
	p := &picker{key: b.cfg.Key, instances: instances}
	n := len(instances)
	if n == 0 {
		return p
	}
	// Points per instance: Points × weight / mean weight, at least 1,
	// scaled down together if the ring would pass MaxPoints.
	var sum float64
	for i := range instances {
		sum += float64(instances[i].EffectiveWeight())
	}
	scale := float64(b.cfg.Points) * float64(n) / sum
	counts := make([]int, n)
	total := 0
	for i := range instances {
		counts[i] = max(1, int(float64(instances[i].EffectiveWeight())*scale+0.5))
		total += counts[i]
	}
	if total > b.cfg.MaxPoints {
		f := float64(b.cfg.MaxPoints) / float64(total)
		total = 0
		for i, c := range counts {
			counts[i] = max(1, int(float64(c)*f))
			total += counts[i]
		}
	}

	// Sort points as single words: the hash with its low bits replaced
	// by the owner's index, so that the sort compares plain integers. The
	// ring keeps the rest of the hash; a key hash lands on the first point
	// at or after it.
	shift := bits.Len(uint(n - 1))
	mask := uint64(1)<<shift - 1
	ring := make([]uint64, 0, total)
	for i := range instances {
		h := stablehash.String(instances[i].Addr)
		for j := 0; j < counts[i]; j++ {
			ring = append(ring, stablehash.Mix(h+uint64(j+1)*0x9e3779b97f4a7c15)&^mask|uint64(i))
		}
	}
	slices.Sort(ring)
	// Points that share a position keep the smaller address first, so the
	// ring does not depend on the order of the snapshot.
	for i := 1; i < len(ring); i++ {
		for j := i; j > 0 && ring[j]&^mask == ring[j-1]&^mask &&
			instances[ring[j]&mask].Addr < instances[ring[j-1]&mask].Addr; j-- {
			ring[j], ring[j-1] = ring[j-1], ring[j]
		}
	}
	p.hashes = ring
	p.owners = make([]int32, len(ring))
	for i, v := range ring {
		p.hashes[i], p.owners[i] = v&^mask, int32(v&mask)
	}
	return p
}

type picker struct {
	key       string
	instances []discovery.Instance
	hashes    []uint64 // ring points, ascending
	owners    []int32  // owners[i] owns hashes[i]
}

func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	n := len(p.hashes)
	if n == 0 {
		return balancer.PickResult{}, balancer.ErrNoInstance
	}
	var h uint64
	if v, ok := value(info.Ctx, p.key); ok {
		h = stablehash.String(v)
	} else {
		h = rand.Uint64()
	}
	// The first point at or after h, wrapping around.
	lo, hi := 0, n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if p.hashes[mid] < h {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == n {
		lo = 0
	}
	return balancer.PickResult{Instance: &p.instances[p.owners[lo]]}, nil
}

// value returns the first outgoing metadata value of key in ctx.
func value(ctx context.Context, key string) (string, bool) {
	if ctx == nil {
		return "", false
	}
	return metadata.OutgoingValue(ctx, key)
}
