package server

import "github.com/sluicerpc/sluice/policy"

// WithPolicy admits calls by the limits of the TrafficPolicies in t (token
// buckets per method and per caller, a concurrency bound, load shedding),
// each service's limits applying to the calls to that service. A call
// turned away fails with ResourceExhausted and the retry-after-ms response
// metadata. t may change while the server runs (Table.Update,
// Table.Follow).
//
// The admission middleware takes its place in the chain where the option
// is given: give it after the tracing and metrics middlewares, so that
// rejected calls are traced and counted.
func WithPolicy(t *policy.Table) Option {
	return WithMiddleware(t.Server())
}
