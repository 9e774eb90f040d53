package server

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/route"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// WithRoutes applies the server side of the RouteRule and Lane documents
// in t (default none). A call that arrives in no lane joins the lane whose
// ingress it matches (header, cookie, user-id hash or percentage): the
// lane goes into its baggage, so every call the handler makes with its
// context carries it down the chain. And the faults of routes marked for
// the server side (delay, abort) are injected before the handler runs.
// t may change while the server runs.
//
// The middleware takes its place in the chain where the option is given.
func WithRoutes(t *route.Table) Option {
	return WithMiddleware(routes(t))
}

func routes(t *route.Table) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			info := callinfo.FromContext(ctx)
			if info == nil {
				return next(ctx, req, resp)
			}
			in := route.Input{
				Side:     callinfo.Server,
				Service:  info.Service,
				Method:   info.Method,
				Caller:   info.Caller,
				Metadata: func(k string) (string, bool) { return metadata.IncomingValue(ctx, k) },
				Baggage:  func(k string) (string, bool) { return metadata.BaggageValue(ctx, k) },
				Rand:     rand.Uint64(),
			}
			if _, inLane := metadata.BaggageValue(ctx, route.LaneKey); !inLane {
				if lane, ok := t.Ingress(in); ok {
					if lctx, err := metadata.SetBaggage(ctx, route.LaneKey, lane); err == nil {
						ctx = lctx
					}
				}
			}
			d := t.Decide(in)
			if d.Delay > 0 {
				tm := time.NewTimer(d.Delay)
				select {
				case <-tm.C:
				case <-ctx.Done():
					tm.Stop()
					return status.Errorf(codes.DeadlineExceeded, "server: %s.%s: the caller's deadline ran out during an injected delay of %v", info.Service, info.Method, d.Delay)
				}
			}
			if d.Abort != nil {
				return d.Abort
			}
			return next(ctx, req, resp)
		}
	}
}
