// Package limit is admission control for servers: token-bucket QPS limits
// per method and per calling service, a bound on calls in flight, and
// adaptive load shedding that estimates capacity from throughput and
// latency (BBR style), optionally gated on CPU usage.
//
// A Config says what to limit; New checks it and builds a Limiter, and
// Middleware applies it to each call:
//
//	l, err := limit.New(limit.Config{
//		Methods:        map[string]limit.Rate{"pkg.OrderService/Get": {QPS: 500}},
//		Callers:        map[string]limit.Rate{"batch-job": {QPS: 50, Burst: 10}},
//		MaxConcurrency: 1000,
//		Shed:           &limit.ShedConfig{},
//	})
//	...
//	srv := server.New(server.WithMiddleware(limit.Middleware(l)))
//
// A call turned away fails with code ResourceExhausted and a message that
// names the limit ("limit: method pkg.OrderService/Get over its 500 qps
// (burst 500)"); on the server the error matches ErrLimited under
// errors.Is. The reply carries the response metadata "retry-after-ms"
// (RetryAfterKey): the milliseconds to wait before trying again, which
// RetryAfter reads on the client. It travels on every protocol.
//
// For a policy reloaded at run time, Dynamic swaps Limiters atomically and
// keeps the state of limits whose settings did not change.
//
// TokenBucket, Concurrency and Shedder are usable on their own; none of
// them allocates on the call path, and TokenBucket is a single atomic
// word (GCRA).
package limit
