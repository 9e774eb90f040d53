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
	ins   []discovery.Instance // Of: served as they are
}

// Of returns a Resolver over instances given whole, labels and weights
// included (their Service is set to the service asked for).
//
//	static.Of(discovery.Instance{Addr: a, Labels: map[string]string{"version": "v2"}})
func Of(ins ...discovery.Instance) *Resolver { return &Resolver{ins: ins} }

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
	ins := make([]discovery.Instance, 0, len(r.addrs)+len(r.ins))
	for _, a := range r.addrs {
		ins = append(ins, discovery.Instance{Service: service, Addr: a})
	}
	for _, in := range r.ins {
		in.Service = service
		ins = append(ins, in)
	}
	update(ins)
	return nopCloser{}, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
