//go:build !unix

package echoimpl_test

import "time"

// cpuTime is unknown here: BenchmarkRows reports no cpu-ns/op.
func cpuTime() time.Duration { return 0 }
