// Package loadgentest is the conformance suite every loadgen.Impl runs in its
// own tests, so all benchmark rows meet the same contract:
//
//	func TestImpl(t *testing.T) { loadgentest.Check(t, grpcimpl.Impl()) }
package loadgentest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicerpc/sluice/internal/loadgen"
)

// Sizes are the payload sizes Check starts the implementation with; 100 KiB
// is larger than typical 64 KiB I/O buffers and HTTP/2 flow-control windows.
var Sizes = []int{0, 1, 1024, 100 << 10}

// Check starts impl once per payload size in Sizes and, for each, makes
// concurrent calls that must all succeed, checks that a call with a canceled
// context fails, stops impl and verifies no goroutine is left behind.
func Check(t *testing.T, impl loadgen.Impl) {
	t.Helper()
	CheckSizes(t, impl, Sizes)
}

// CheckSizes is Check over the given payload sizes.
func CheckSizes(t *testing.T, impl loadgen.Impl, sizes []int) {
	t.Helper()
	for _, size := range sizes {
		t.Run(fmt.Sprintf("%s/size=%d", impl.Name, size), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			check(t, impl, size)
		})
	}
}

func check(t *testing.T, impl loadgen.Impl, size int) {
	call, stop, err := impl.Start(loadgen.Payload(size))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const callers, perCaller = 50, 20
	errs := make(chan error, callers*perCaller)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range perCaller {
				if err := call(ctx); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	var n int
	for err := range errs {
		if n++; n <= 3 {
			t.Errorf("call: %v", err)
		}
	}
	if n > 0 {
		t.Fatalf("%d of %d calls failed", n, callers*perCaller)
	}

	canceled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	if err := call(canceled); err == nil {
		t.Errorf("call with canceled context succeeded")
	} else if !errors.Is(err, context.Canceled) {
		t.Logf("call with canceled context: %v (not context.Canceled, accepted)", err)
	}
	// The implementation still works after a canceled call.
	if err := call(ctx); err != nil {
		t.Errorf("call after a canceled call: %v", err)
	}
}
