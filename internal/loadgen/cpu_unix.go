//go:build unix

package loadgen

import (
	"syscall"
	"time"
)

// ProcessCPU returns the CPU time, user and system, the whole process has
// used; 0 where it cannot be read. Benchmarks report cpu-ns/op from it.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
