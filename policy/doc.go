// Package policy is the TrafficPolicy kind of governance document and the
// Table that applies such documents to running clients and servers.
//
// A TrafficPolicy names one service and says how clients call it (timeout,
// retries or hedging, circuit breakers per method and per instance,
// fallback) and how its servers admit calls (token buckets per method and
// per caller, a concurrency bound, adaptive load shedding). Fields at the
// top of the spec apply to every method; spec.methods overrides them
// method by method.
//
// A Table holds the policies in force. Clients take it with
// client.WithPolicy, servers with server.WithPolicy; Table.Follow keeps it
// in step with a config store, so `sluice apply -f policy.yaml` changes
// running processes without a restart:
//
//	w, err := config.Watch(ctx, etcdstore.New(cli))
//	...
//	t, err := policy.NewTable(nil)
//	...
//	stop := t.Follow(w)
//	defer stop()
//	c, err := client.New("etcd:///orders", client.WithPolicy(t))
package policy
