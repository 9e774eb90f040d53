package grpcimpl

import (
	"testing"

	"github.com/sluicerpc/sluice/bench/internal/harness/harnesstest"
)

func TestImpl(t *testing.T) { harnesstest.Check(t, Impl()) }
