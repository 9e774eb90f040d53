// Package route is Sluice's traffic rule engine: the RouteRule and Lane
// kinds of governance document, and the Table that evaluates them for each
// call before the balancer picks an instance.
//
// A RouteRule routes the calls to one service. Its routes are tried in
// order and the first that matches wins: on the method, request metadata
// (exact, prefix, regex, present, absent), W3C baggage members, and the
// caller's service name and labels. The route sends the call to one of its
// destinations — subsets of the instances chosen by label, such as
// version=v2 — drawn by weight, or by the hash of a sticky metadata key so
// one user stays on one subset; it may mirror a share of the calls to a
// shadow subset and inject delays and aborts. A call no route matches goes
// to all instances.
//
// A Lane is a full-link gray lane. Calls enter it at the edge (Ingress: by
// header, cookie, a user-id hash range or a percentage), carry it in the
// baggage member "sluice-lane" through every hop, and at each hop go to the
// callee's instances labelled for the lane (lane=blue), or to the base
// instances when the callee has none in the lane (PERMISSIVE, the default;
// STRICT fails with Unavailable). Calls not in a lane never reach lane
// instances. Because the lane is baggage, it survives hops with no lane
// instance: A(blue) -> B(base) -> C(blue).
//
// # Evaluation
//
// Table.Decide evaluates one call and returns a Decision: which rule,
// route and subset, the lane, whether to mirror, delay or abort. It does
// not allocate: Input takes the metadata and baggage as lookup functions
// and all randomness as one number, so tests are deterministic. Select
// turns a Decision into the instances to pick from, and Decision.Target
// names that set, so a client keeps one picker per Target.
//
// # Integration
//
// A client, once per call (its retries and hedges reuse the Decision):
//
//	d := table.Decide(route.Input{Service: svc, Method: m, Caller: self,
//		CallerLabels: selfLabels, Rand: rand.Uint64(),
//		Metadata: func(k string) (string, bool) { return metadata.OutgoingValue(ctx, k) },
//		Baggage:  func(k string) (string, bool) { return metadata.BaggageValue(ctx, k) }})
//	// record d.Rule, d.Route, d.Subset.Name in the call info and metrics
//	// sleep d.Delay (bounded by ctx); if d.Abort != nil, fail with it
//	// pick from the picker of d.Target(), built over route.Select(instances, d);
//	//   none: fail with route.NoInstance(svc, d)
//	// if m, ok := d.MirrorTarget(); ok: enqueue a copy for route.Select(instances, m)
//
// A server, per call: Table.Ingress, which returns the lane the call
// carries or should join (when it did not carry it already, the server
// puts it in the handler's baggage, metadata.SetBaggage(ctx,
// route.LaneKey, lane), so the calls the handler makes carry it on); and
// Decide with Side: callinfo.Server for server-side faults.
//
// # Messaging
//
// Lanes carry over to messaging (contrib/nats) the same way: a message
// carries the lane in its baggage header; a consumer in a lane (its
// instance labelled lane=blue) takes the lane's messages, and base
// consumers take unlaned messages plus those of lanes that have no
// consumer of their own — the instance rule of Select applied to consumer
// groups.
package route
