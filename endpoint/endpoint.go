// Package endpoint defines the one shape every Sluice middleware has, on the
// client and on the server alike.
//
//	logging := func(next endpoint.Endpoint) endpoint.Endpoint {
//		return func(ctx context.Context, req, resp any) error {
//			err := next(ctx, req, resp)
//			info := callinfo.FromContext(ctx)
//			slog.Info("call", "method", info.Method, "err", err)
//			return err
//		}
//	}
//
// On the client, req is the request message and resp the caller's response
// message, filled in by the transport. On the server, req is the decoded
// request and resp is a *Reply whose Msg the handler sets.
package endpoint

import "context"

// Endpoint performs a call: it reads req and fills resp.
type Endpoint func(ctx context.Context, req, resp any) error

// Middleware wraps an Endpoint with more behaviour.
type Middleware func(next Endpoint) Endpoint

// Chain composes middlewares so that the first one given is the outermost:
// Chain(a, b)(e) runs a, then b, then e.
func Chain(mws ...Middleware) Middleware {
	return func(next Endpoint) Endpoint {
		for i := len(mws) - 1; i >= 0; i-- {
			next = mws[i](next)
		}
		return next
	}
}

// Reply is the resp argument of a server-side Endpoint: the handler stores
// its response message in Msg. A middleware may read or replace it.
type Reply struct {
	Msg any
}

// Message returns the response message resp stands for: Msg of a *Reply on
// the server, resp itself on the client.
func Message(resp any) any {
	if r, ok := resp.(*Reply); ok {
		return r.Msg
	}
	return resp
}
