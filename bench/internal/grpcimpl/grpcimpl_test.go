package grpcimpl

import (
	"testing"

	"github.com/sluicerpc/sluice/internal/loadgen/loadgentest"
)

func TestImpl(t *testing.T) { loadgentest.Check(t, Impl()) }
