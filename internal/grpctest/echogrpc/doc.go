// Package echogrpc holds stock grpc-go stubs for the echo example, made by
// protoc-gen-go-grpc v1.6.2 from examples/echo/echo.proto with the file
// mapped to this package:
//
//	protoc --go-grpc_out=. \
//	  "--go-grpc_opt=Mexamples/echo/echo.proto=github.com/sluicerpc/sluice/internal/grpctest/echogrpc;echogrpc" \
//	  examples/echo/echo.proto
//
// Tests use them as an unmodified gRPC peer of Sluice. The messages are the
// echopb ones, aliased here, so the protobuf registry holds each type once.
package echogrpc

import "github.com/sluicerpc/sluice/examples/echo/echopb"

// The echo messages, as the generated stubs name them.
type (
	EchoRequest  = echopb.EchoRequest
	EchoResponse = echopb.EchoResponse
)
