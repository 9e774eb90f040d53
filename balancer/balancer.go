// Package balancer defines how a client picks one instance for a call. A
// Builder turns a snapshot (or a subset chosen by routing) into a Picker;
// pickers are immutable, so a new snapshot means a new Picker.
//
//	p := roundrobin.Builder{}.Build(instances)
//	res, err := p.Pick(balancer.PickInfo{Ctx: ctx, Method: "Echo"})
package balancer

import (
	"context"
	"time"

	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// PickInfo describes the call to pick for.
type PickInfo struct {
	Ctx     context.Context
	Service string
	Method  string
}

// DoneInfo reports how a picked call ended.
type DoneInfo struct {
	Err     error
	Latency time.Duration
	// End is when the call ended, so a picker need not read the clock
	// again; zero when the caller did not say.
	End time.Time
}

// PickResult is the chosen instance and an optional completion callback.
type PickResult struct {
	Instance *discovery.Instance
	// Done, when not nil, is called once the call ends.
	Done func(DoneInfo)
}

// Picker picks an instance for a call.
type Picker interface {
	Pick(info PickInfo) (PickResult, error)
}

// Builder builds Pickers over instance sets.
type Builder interface {
	Build(instances []discovery.Instance) Picker
}

// ErrNoInstance is what a picker over an empty set returns.
var ErrNoInstance = status.Err(codes.Unavailable, "balancer: no instance available")
