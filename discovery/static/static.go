// Package static is a Resolver over a fixed list of addresses.
//
//	r := static.New("127.0.0.1:8080", "127.0.0.1:8081")
package static

import (
	"context"
	"io"
	"strings"

	"github.com/sluicerpc/sluice/discovery"
)

// Resolver serves one fixed snapshot, whatever service is asked for.
type Resolver struct {
	addrs []string
}

// New returns a Resolver over addrs.
func New(addrs ...string) *Resolver { return &Resolver{addrs: addrs} }

// Parse returns a Resolver over a comma-separated list, ignoring blanks.
func Parse(list string) *Resolver {
	var addrs []string
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	return New(addrs...)
}

// Resolve implements discovery.Resolver.
func (r *Resolver) Resolve(_ context.Context, service string, update func([]discovery.Instance)) (io.Closer, error) {
	ins := make([]discovery.Instance, len(r.addrs))
	for i, a := range r.addrs {
		ins[i] = discovery.Instance{Service: service, Addr: a}
	}
	update(ins)
	return nopCloser{}, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
