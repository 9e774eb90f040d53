package status_test

import (
	"errors"
	"fmt"

	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

func Example() {
	err := status.Errorf(codes.NotFound, "order %d not found", 42)
	fmt.Println(status.Code(err))
	fmt.Println(errors.Is(err, status.ErrNotFound))
	fmt.Println(status.Convert(err).Message())
	// Output:
	// NotFound
	// true
	// order 42 not found
}
