package policy_test

import (
	"github.com/sluicerpc/sluice/observe/metrics"
	"github.com/sluicerpc/sluice/policy"
)

// The metrics package is an Observer, as the README shows.
var _ policy.Observer = (*metrics.Metrics)(nil)
