// Package metrics exports Prometheus metrics of Sluice calls, client and
// server, and of the governance around them: breaker states, admission
// rejections, retries, hedges, fallbacks and outlier ejections.
//
//	m, err := metrics.New(metrics.Config{})
//	if err != nil { ... }
//	srv := server.New(server.WithMetrics(m))          // GET /metrics on the port
//	c, err := client.New(target, client.WithMiddleware(m.Client()))
//
// # Metrics
//
// Every name starts with sluice_. Label "code" is the gRPC name of the
// call's status code (OK, CANCELLED, UNAVAILABLE, ...).
//
//	sluice_server_requests_total{service,method,code,peer}       counter
//	sluice_server_handling_seconds{service,method}               histogram
//	sluice_server_in_flight_requests{service,method}             gauge
//	sluice_server_received_bytes_total{service,method}           counter
//	sluice_server_sent_bytes_total{service,method}               counter
//	sluice_client_requests_total{service,method,code,peer,route,subset} counter
//	sluice_client_request_seconds{service,method}                histogram
//	sluice_client_in_flight_requests{service,method}             gauge
//	sluice_client_sent_bytes_total{service,method}               counter
//	sluice_client_received_bytes_total{service,method}           counter
//	sluice_breaker_state{breaker}                                gauge
//	sluice_breaker_transitions_total{breaker,from,to}            counter
//	sluice_rejected_requests_total{side,service,method,reason}   counter
//	sluice_client_retries_total{service,method}                  counter
//	sluice_client_hedges_total{service,method}                   counter
//	sluice_client_fallbacks_total{service,method}                counter
//	sluice_client_ejections_total{peer}                          counter
//
// Label "peer" is bounded on purpose. On the server it is the calling
// service's name as the caller sent it (callinfo.Info.Caller), "unknown"
// when it sent none — never the remote address, which would make a series
// per client connection. On the client it is the address of the instance
// the call went to (callinfo.Info.Peer), "unknown" when no instance was
// picked. Config.MaxPeers caps the distinct values per method; further
// peers are counted as "other".
//
// Labels "route" and "subset" of the client's request counts say which
// route of a RouteRule and which subset of instances served the call
// (client.WithRoutes; callinfo.Info.Route and Subset), empty when no rule
// routed it. With the count by code they give each subset's error rate,
// the figure a canary is judged by. They come with the peer: MaxPeers
// caps the distinct peer, route and subset combinations.
//
// The latency histograms measure the time spent inside the middleware:
// on the server from the start of the chain (callinfo.Info.Start) to the
// handler's return (the reply's encoding and write are not included), on
// the client from the call's Start to the End of its latest attempt that
// reached an instance, as the client records them. Their buckets are
// Config.Buckets, DefaultBuckets unless set.
//
// The byte counters add callinfo.Info.SentBytes and ReceivedBytes: the
// encoded messages, on every protocol, without protocol framing (gRPC's
// 5-byte message prefix, TTHeader's headers) and before compression. On
// the server the reply's size is known only once it is
// encoded, after the middlewares return: server.WithMetrics reports it
// through ServerSent, a chain that only has the Server middleware counts
// received bytes alone.
//
// A call that fails before the server's chain runs (an unknown method, an
// undecodable request) is not counted by the server. A panic in a handler
// counts as INTERNAL, the code the server answers with.
//
// # Placement
//
// On the server, server.WithMetrics puts Server() outermost in the chain,
// so a call rejected by admission control is counted with its code. On the
// client, place Client() before (outside) the retry middleware to count
// calls, after (inside) it to count attempts; outside, "peer" is the
// instance of the last attempt and the byte counters that attempt's.
//
// # Cost
//
// A call costs a few atomic additions and no allocation. The latencies
// come from the call info's Start and End (callinfo.Info), which the
// framework records anyway: the client middleware reads no clock, the
// server's one, as the chain returns. The series are found in
// copy-on-write maps, never through WithLabelValues, and the counts a
// call adds to are kept once per core, each copy on cache lines of its
// own, so that calls on different cores do not fight over a cache line
// (on a busy multi-core server, fetching a line another core wrote costs
// more than the additions); a scrape adds the copies up and reports them
// as constant metrics. It does so without stopping calls, so the in-flight
// gauge of a scrape that races with calls may count some that end while
// it reads (never fewer than none); quiet, it is exact.
package metrics
