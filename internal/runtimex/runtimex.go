// Package runtimex reaches the runtime's processor pinning, which the
// standard library does not export, for per-core counters on the per-call
// path of metrics: P returns the id of the processor (P) the goroutine
// runs on, as sync.Pool finds its per-P slot, without sync.Pool's round
// trip.
//
// runtime.procPin and runtime.procUnpin are linknamed. The runtime keeps
// them, with these signatures, for the widely used packages that reach
// them so (go.dev/issue/67401; bytedance/gopkg, which Kitex builds on, is
// one), and TestP fails if a Go release changes what they do.
package runtimex

import _ "unsafe" // for go:linkname

//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

// P returns the id of the P the calling goroutine runs on: at least zero
// and less than runtime.GOMAXPROCS(0) as it was then. The goroutine may
// move to another P as soon as P returns; callers use it as a hint (which
// copy of a sharded counter to add to), never for exclusion.
func P() int {
	p := procPin()
	procUnpin()
	return p
}
