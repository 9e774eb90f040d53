//go:build !unix

package trace_test

import "time"

// cpuTime is unknown here: BenchmarkCall reports no cpu-ns/op.
func cpuTime() time.Duration { return 0 }
