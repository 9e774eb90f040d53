//go:build !unix

package loadgen

import "time"

// processCPU is not measured on this platform; CPUPerCall reads 0.
func processCPU() time.Duration { return 0 }
