package echoimpl_test

import (
	"testing"

	"github.com/sluicerpc/sluice/internal/loadgen/echoimpl"
	"github.com/sluicerpc/sluice/internal/loadgen/loadgentest"
)

func TestImpls(t *testing.T) {
	loadgentest.Check(t, echoimpl.Impl())
	loadgentest.CheckSizes(t, echoimpl.GovernanceImpl(), []int{0, 1024})
	loadgentest.CheckSizes(t, echoimpl.ObservabilityImpl(), []int{0, 1024})
	loadgentest.Check(t, echoimpl.GRPCImpl())
	// HTTP/1.1 holds a connection per call: 1,000 calls of 100 KiB under
	// the race detector take too long to be a useful test.
	loadgentest.CheckSizes(t, echoimpl.ConnectImpl(), []int{0, 1024})
}
