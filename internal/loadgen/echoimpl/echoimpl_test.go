package echoimpl_test

import (
	"testing"

	"github.com/sluicerpc/sluice/internal/loadgen/echoimpl"
	"github.com/sluicerpc/sluice/internal/loadgen/loadgentest"
)

func TestImpls(t *testing.T) {
	loadgentest.Check(t, echoimpl.Impl())
	loadgentest.Check(t, echoimpl.GRPCImpl())
	loadgentest.Check(t, echoimpl.ConnectImpl())
}
