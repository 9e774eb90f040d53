package breaker

import (
	"context"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/endpoint"
)

// Middleware is a client middleware with one breaker per service method,
// taken from set. A call without callinfo passes through unguarded.
func Middleware(set *Set) endpoint.Middleware {
	return guard(set, func(info *callinfo.Info) setKey {
		return setKey{a: info.Service, b: info.Method}
	})
}

// InstanceMiddleware is a client middleware with one breaker per instance
// (callinfo Peer), taken from set. It must run after the balancer has
// picked; a call with no Peer passes through unguarded.
func InstanceMiddleware(set *Set) endpoint.Middleware {
	return guard(set, func(info *callinfo.Info) setKey {
		return setKey{a: info.Peer}
	})
}

func guard(set *Set, key func(*callinfo.Info) setKey) endpoint.Middleware {
	clock := set.cfg.Clock
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			info := callinfo.FromContext(ctx)
			if info == nil {
				return next(ctx, req, resp)
			}
			k := key(info)
			if k.a == "" {
				return next(ctx, req, resp)
			}
			b := set.get(k)
			tok, err := b.Allow()
			if err != nil {
				return err
			}
			start := clock.Now()
			err = next(ctx, req, resp)
			end := clock.Now()
			b.RecordAt(tok, err, end.Sub(start), end)
			return err
		}
	}
}
