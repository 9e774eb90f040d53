package breaker

import (
	"context"
	"time"

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

// guard times calls by the call's own clock readings when the Set uses
// the system clock: the call's Start for a first attempt, and the End the
// client sets as the reply arrives. It reads the clock only for what the
// call did not record.
func guard(set *Set, key func(*callinfo.Info) setKey) endpoint.Middleware {
	clock := set.cfg.Clock
	_, system := clock.(realClock)
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
			var start time.Time
			if system && info.Attempt <= 1 && !info.Start.IsZero() {
				start = info.Start
			} else {
				start = clock.Now()
			}
			err = next(ctx, req, resp)
			end := info.End
			if !system || end.Before(start) {
				end = clock.Now()
			}
			b.RecordAt(tok, err, end.Sub(start), end)
			return err
		}
	}
}
