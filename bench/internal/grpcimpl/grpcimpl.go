// Package grpcimpl is the "grpc" benchmark row: stock google.golang.org/grpc
// with default server and client options, insecure credentials and one
// ClientConn shared by every caller, serving the echo example's
// sluice.examples.echo.v1.EchoService over loopback.
//
// The service is registered from a hand-written grpc.ServiceDesc and called
// with ClientConn.Invoke, so no protoc-gen-go-grpc output is needed; payloads
// are the echopb messages under grpc's default proto codec. Each call builds
// a fresh request and response, as application code does.
//
//	res, err := loadgen.Run(grpcimpl.Impl(), loadgen.Config{})
package grpcimpl

import (
	"bytes"
	"context"
	"errors"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/internal/loadgen"
)

const (
	serviceName = "sluice.examples.echo.v1.EchoService"
	echoMethod  = "/" + serviceName + "/Echo"
	servedBy    = "grpc"
)

// ErrMismatch is returned by a call whose reply payload differs from the
// request's.
var ErrMismatch = errors.New("grpcimpl: reply payload does not match request")

// Impl returns the "grpc" row.
func Impl() loadgen.Impl {
	return loadgen.Impl{Name: "grpc", Start: start}
}

// echoServer is the handler type of serviceDesc.
type echoServer interface {
	Echo(context.Context, *echopb.EchoRequest) (*echopb.EchoResponse, error)
}

type echo struct{}

func (echo) Echo(_ context.Context, in *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	return &echopb.EchoResponse{Message: in.GetMessage(), Payload: in.GetPayload(), ServedBy: servedBy}, nil
}

func echoHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(echopb.EchoRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(echoServer).Echo(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: echoMethod}
	handler := func(ctx context.Context, req any) (any, error) {
		return srv.(echoServer).Echo(ctx, req.(*echopb.EchoRequest))
	}
	return interceptor(ctx, in, info, handler)
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*echoServer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Echo", Handler: echoHandler}},
	Metadata:    "examples/echo/echo.proto",
}

func start(payload []byte) (func(context.Context) error, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	srv := grpc.NewServer()
	srv.RegisterService(&serviceDesc, echo{})
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln) // returns when Stop closes ln
	}()
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		srv.Stop()
		<-served
		return nil, nil, err
	}
	call := func(ctx context.Context) error {
		req := &echopb.EchoRequest{Message: "bench", Payload: payload}
		resp := new(echopb.EchoResponse)
		if err := cc.Invoke(ctx, echoMethod, req, resp); err != nil {
			return err
		}
		if !bytes.Equal(resp.GetPayload(), payload) {
			return ErrMismatch
		}
		return nil
	}
	stop := func() {
		cc.Close()
		srv.Stop()
		<-served
	}
	return call, stop, nil
}
