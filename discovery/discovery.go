// Package discovery defines how servers announce themselves and how clients
// find instances of a service: a Registry registers Instances, a Resolver
// watches one service and hands over whole snapshots of its Instances.
// Implementations live in sub-packages (discovery/static, discovery/etcd).
//
//	r := static.New("127.0.0.1:8080", "127.0.0.1:8081")
//	closer, _ := r.Resolve(ctx, "echo", func(ins []discovery.Instance) { ... })
//	defer closer.Close()
package discovery

import (
	"context"
	"io"
)

// Instance is one reachable copy of a service.
type Instance struct {
	// Service is the service's registry name.
	Service string
	// Addr is host:port.
	Addr string
	// Weight is the relative share of traffic; 0 means the default, 100.
	Weight int
	// Labels describe the instance: version, lane, zone, ...
	Labels map[string]string
}

// DefaultWeight is the weight of an instance that sets none.
const DefaultWeight = 100

// EffectiveWeight returns the weight balancers should use.
func (in Instance) EffectiveWeight() int {
	if in.Weight <= 0 {
		return DefaultWeight
	}
	return in.Weight
}

// Resolver watches the instances of services.
type Resolver interface {
	// Resolve starts watching service and calls update with every new
	// snapshot (the first one before Resolve returns when it is known).
	// Snapshots are never changed after they are handed over, so update
	// may keep them.
	// Close the returned Closer to stop watching.
	Resolve(ctx context.Context, service string, update func([]Instance)) (io.Closer, error)
}

// Registry announces instances so that Resolvers find them.
// An implementation may also be an io.Closer; closing it deregisters
// everything it registered.
type Registry interface {
	// Register announces in and keeps the registration alive (through
	// lost leases, store restarts, ...) until Deregister or Close.
	// Registering the same Service and Addr again updates the instance.
	Register(ctx context.Context, in Instance) error
	// Deregister withdraws the instance with in's Service and Addr.
	Deregister(ctx context.Context, in Instance) error
}
