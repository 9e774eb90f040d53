package etcd

import (
	"testing"

	"github.com/sluicerpc/sluice/discovery"
)

// Helpers for the tests in package etcd_test, which may import client
// (client imports this package, so the tests here cannot).

// TestEtcd is an embedded one-member etcd.
type TestEtcd = node

// StartTestEtcd starts an embedded etcd, stopped when t ends.
func StartTestEtcd(t testing.TB) *TestEtcd { return startEtcd(t) }

// Endpoints returns the client endpoints of n.
func (n *node) Endpoints() []string { return endpoints(n) }

// Stop stops n, gracefully.
func (n *node) Stop() { n.stop() }

// Restart starts n again on the same ports and data.
func (n *node) Restart(t testing.TB) { n.start(t, cluster([]*node{n})) }

// Recorder keeps every snapshot it is handed.
type Recorder = recorder

// Update records ins.
func (r *recorder) Update(ins []discovery.Instance) { r.update(ins) }

// Snapshots returns every snapshot recorded.
func (r *recorder) Snapshots() [][]discovery.Instance { return r.since(0) }

// Eventually polls cond until it holds or timeout passes.
var Eventually = eventually

// Quiet is a discarding logger.
var Quiet = quiet
