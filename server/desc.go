package server

import "context"

// ServiceDesc describes a service for RegisterService. Generated code
// (protoc-gen-sluice) declares one per service; write one by hand only for
// services without an IDL.
type ServiceDesc struct {
	// ServiceName is the full protobuf name, e.g. "sluice.examples.echo.v1.EchoService".
	ServiceName string
	// HandlerType is a pointer to the service's server interface, used to
	// check that an implementation satisfies it.
	HandlerType any
	Methods     []MethodDesc
	// Metadata names the .proto file the service came from.
	Metadata string
}

// MethodDesc describes one unary method.
type MethodDesc struct {
	MethodName string
	// NewRequest returns an empty request message to decode into.
	NewRequest func() any
	// Handler calls the implementation's method with a decoded request.
	Handler func(impl any, ctx context.Context, req any) (any, error)
}

// Registrar is what generated RegisterXxxServer functions register with.
type Registrar interface {
	RegisterService(desc *ServiceDesc, impl any)
}
