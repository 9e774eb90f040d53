package policy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicerpc/sluice/breaker"
	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/limit"
)

func infoOf(ctx context.Context) *callinfo.Info { return callinfo.FromContext(ctx) }

// Client returns the client middleware that applies the policy of the
// called service to each call: fallback, timeout, retries or hedging, and
// the method's circuit breaker, outermost first. A call to a service
// without a policy passes straight through. The per-instance breakers run
// inside the client, after the balancer picks (see Instances).
//
// The chains are built once per policy generation and method, so a call
// costs a few map lookups beyond what its policy does.
func (t *Table) Client() endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		cc := &clientChains{t: t, next: next}
		return cc.call
	}
}

type clientChains struct {
	t    *Table
	next endpoint.Endpoint
	mu   sync.Mutex // serialises inserts
	eps  atomic.Pointer[chainMap]
}

// chainMap caches built chains for one generation of policies.
type chainMap struct {
	gen *compiled
	m   map[*methodPolicy]endpoint.Endpoint
}

func (cc *clientChains) call(ctx context.Context, req, resp any) error {
	info := callinfo.FromContext(ctx)
	if info == nil {
		return cc.next(ctx, req, resp)
	}
	gen := cc.t.cur.Load()
	sp := gen.services[info.Service]
	if sp == nil {
		return cc.next(ctx, req, resp)
	}
	mp := sp.methods[info.Method]
	if mp == nil {
		mp = sp.def
	}
	var err error
	if cm := cc.eps.Load(); cm != nil && cm.gen == gen && cm.m[mp] != nil {
		err = cm.m[mp](ctx, req, resp)
	} else {
		err = cc.build(gen, mp)(ctx, req, resp)
	}
	if err != nil && cc.t.opts.observer != nil && errors.Is(err, breaker.ErrOpen) {
		cc.t.opts.observer.Rejected("client", info.Service, info.Method, "breaker")
	}
	return err
}

// build makes mp's chain and caches it.
func (cc *clientChains) build(gen *compiled, mp *methodPolicy) endpoint.Endpoint {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	old := cc.eps.Load()
	if old != nil && old.gen == gen {
		if ep := old.m[mp]; ep != nil {
			return ep
		}
	}
	next := &chainMap{gen: gen, m: map[*methodPolicy]endpoint.Endpoint{}}
	if old != nil && old.gen == gen {
		for k, v := range old.m {
			next.m[k] = v
		}
	}
	ep := mp.chain(cc.next)
	next.m[mp] = ep
	cc.eps.Store(next)
	return ep
}

// chain wraps next in mp's layers.
func (mp *methodPolicy) chain(next endpoint.Endpoint) endpoint.Endpoint {
	var mws []endpoint.Middleware
	if mp.fallback != nil {
		mws = append(mws, mp.fallback.Middleware())
	}
	if mp.timeout > 0 {
		mws = append(mws, timeout(mp.timeout))
	}
	switch {
	case mp.hedge != nil:
		mws = append(mws, mp.hedge.Middleware())
	case mp.retry != nil:
		mws = append(mws, mp.retry.Middleware())
	}
	if mp.breakers != nil {
		mws = append(mws, breaker.Middleware(mp.breakers))
	}
	return endpoint.Chain(mws...)(next)
}

// timeout bounds a call by d unless the caller's deadline is sooner.
func timeout(d time.Duration) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			deadline := time.Now().Add(d)
			if cur, ok := ctx.Deadline(); ok && !cur.After(deadline) {
				return next(ctx, req, resp)
			}
			ctx, cancel := context.WithDeadline(ctx, deadline)
			defer cancel()
			if info := callinfo.FromContext(ctx); info != nil {
				info.Deadline = deadline
			}
			return next(ctx, req, resp)
		}
	}
}

// Instances returns the per-instance breakers of service's policy, keyed
// by instance address, or nil when it has none. The client checks them
// after the balancer picks and skips an instance whose breaker is open.
func (t *Table) Instances(service string) *breaker.Set {
	if sp := t.cur.Load().services[service]; sp != nil {
		return sp.instances
	}
	return nil
}

// Server returns the server middleware that admits calls by the Limits of
// the called service's policy: each service's limits apply to the calls to
// that service. A call to a service without limits passes straight
// through. The limiter state (tokens, calls in flight, shedding estimate)
// carries over an update where the settings are unchanged.
func (t *Table) Server() endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			info := callinfo.FromContext(ctx)
			if info == nil {
				return next(ctx, req, resp)
			}
			sp := t.cur.Load().services[info.Service]
			if sp == nil || sp.limiter == nil {
				return next(ctx, req, resp)
			}
			err := sp.limiter.Serve(ctx, req, resp, next)
			if err != nil && t.opts.observer != nil && errors.Is(err, limit.ErrLimited) {
				reason := "limit"
				if errors.Is(err, limit.ErrShed) {
					reason = "shed"
				}
				t.opts.observer.Rejected("server", info.Service, info.Method, reason)
			}
			return err
		}
	}
}
