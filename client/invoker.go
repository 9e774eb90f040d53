package client

import (
	"context"

	"github.com/sluicerpc/sluice/metadata"
)

// Invoker performs unary calls. *Client implements it; generated stubs
// (NewXxxClient) take one.
type Invoker interface {
	// Invoke calls method ("/pkg.Service/Method") with req and fills resp.
	Invoke(ctx context.Context, method string, req, resp any, opts ...CallOption) error
}

// CallOption changes one call.
type CallOption interface {
	apply(*callOptions)
}

type callOptions struct {
	responseMD *metadata.MD
}

type callOptionFunc func(*callOptions)

func (f callOptionFunc) apply(o *callOptions) { f(o) }

// ResponseMetadata stores the metadata the server sent back with its reply
// (server.SetResponseMetadata) into *md once the call completes.
func ResponseMetadata(md *metadata.MD) CallOption {
	return callOptionFunc(func(o *callOptions) { o.responseMD = md })
}
