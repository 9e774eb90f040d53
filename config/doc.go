// Package config holds Sluice's governance rule documents: how they are
// written, checked, stored and handed to the code that acts on them.
//
// A document is YAML or JSON with an envelope and a spec:
//
//	apiVersion: sluice/v1
//	kind: TrafficPolicy
//	metadata:
//	  name: checkout
//	spec:
//	  retries: {maxAttempts: 3}
//
// Each kind is registered, with the Go type its spec decodes into and its
// checks, by the package that owns it (Register, KindOf). Parse reads
// documents; Decode checks one against its kind and returns the typed
// spec. A bad document is rejected with an *InvalidError that names the
// document and, for each fault, the field path ("spec.retries.maxAttempts")
// and line, and why.
//
// A Snapshot is a whole, consistent set of valid documents at one revision.
// Stores (config/etcdstore for a fleet, config/filestore for a process on
// its own) apply batches of documents all or none, with optimistic
// concurrency on each document's version, and hand out a new Snapshot when
// something changed. A document that turns invalid in a store never reaches
// the running config: the last valid one stays. Watch follows a store and
// keeps the newest snapshot behind one atomic pointer, so the readers on a
// request path see a change whole or not at all:
//
//	w, err := config.Watch(ctx, filestore.New("rules.yaml"))
//	...
//	_, spec, ok := w.Current().Get("TrafficPolicy", "checkout")
package config
