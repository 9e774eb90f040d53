package loadgen_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicerpc/sluice/internal/loadgen"
)

func ExampleRun() {
	// A trivial Impl: "calls" that never leave the process.
	impl := loadgen.Impl{Name: "noop", Start: func(payload []byte) (func(context.Context) error, func(), error) {
		return func(context.Context) error { return nil }, func() {}, nil
	}}
	res, err := loadgen.Run(impl, loadgen.Config{Concurrency: 2, Duration: 20 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Name, res.Calls > 0, res.Errors)
	// Output: noop true 0
}
