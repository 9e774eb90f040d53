// Package breaker is Sluice's client-side circuit breaker, one per service
// method (Middleware) or per instance (InstanceMiddleware).
//
// A Classic breaker counts calls in a lock-free sliding window (default 10s
// in 10 buckets). It trips open when the failure rate reaches ErrorRate over
// at least MinRequests calls, or when the window's P95 latency exceeds
// LatencyFactor × the P95 it learnt while healthy. After a sleep (5s,
// doubling on each consecutive trip up to 2 min) it lets Probes calls
// through half-open: all succeed and it closes, one fails and it reopens.
// Which errors are failures is up to Config.IsFailure; by default
// Unavailable, DeadlineExceeded, Internal, ResourceExhausted and Unknown
// count and caller errors such as InvalidArgument do not.
//
// An SRE breaker instead rejects each call with probability
// max(0, (requests − K×accepts) / (requests + 1)) (Google SRE book,
// "Handling Overload").
//
// A rejected call fails with code Unavailable and a message naming the
// breaker and its state; errors.Is(err, ErrOpen) holds.
//
//	set, err := breaker.NewSet(breaker.Config{})
//	...
//	client := endpoint.Chain(breaker.Middleware(set), ...)
//
// Used directly, every successful Allow is paired with one Record:
//
//	tok, err := b.Allow()
//	if err != nil {
//		return err
//	}
//	start := time.Now()
//	err = call()
//	b.Record(tok, err, time.Since(start))
package breaker
