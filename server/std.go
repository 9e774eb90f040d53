package server

import (
	"context"
	"errors"
	"io"

	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

// The standard services every Sluice server answers on all three
// protocols: grpc.health.v1.Health (Check and List through the middleware
// chain; Watch on gRPC only, being streaming) and server reflection.

const (
	healthService     = "grpc.health.v1.Health"
	reflectionService = "grpc.reflection.v1.ServerReflection"
)

// healthDesc serves the health service's unary methods from hs.
func healthDesc(hs *health.Server) *ServiceDesc {
	return &ServiceDesc{
		ServiceName: healthService,
		Metadata:    "grpc/health/v1/health.proto",
		Methods: []MethodDesc{
			{
				MethodName: "Check",
				NewRequest: func() any { return new(healthpb.HealthCheckRequest) },
				Handler: func(_ any, ctx context.Context, req any) (any, error) {
					return hs.Check(ctx, req.(*healthpb.HealthCheckRequest))
				},
			},
			{
				MethodName: "List",
				NewRequest: func() any { return new(healthpb.HealthListRequest) },
				Handler: func(_ any, ctx context.Context, req any) (any, error) {
					return hs.List(ctx, req.(*healthpb.HealthListRequest))
				},
			},
		},
	}
}

// healthWatch is the streaming Watch method, added to the health service
// on gRPC. A Watch stream never ends on its own, and gRPC's graceful stop
// waits for every stream, so when the server starts draining each stream
// gets a last NOT_SERVING and ends.
func healthWatch(hs *health.Server, draining <-chan struct{}) grpc.StreamDesc {
	return grpc.StreamDesc{
		StreamName:    "Watch",
		ServerStreams: true,
		Handler: func(_ any, stream grpc.ServerStream) error {
			req := new(healthpb.HealthCheckRequest)
			if err := stream.RecvMsg(req); err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(stream.Context())
			defer cancel()
			stop := context.AfterFunc(ctx, func() {})
			defer stop()
			go func() {
				select {
				case <-draining:
					cancel()
				case <-ctx.Done():
				}
			}()
			err := hs.Watch(req, &grpc.GenericServerStream[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse]{ServerStream: watchStream{stream, ctx}})
			select {
			case <-draining:
				return stream.SendMsg(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING})
			default:
				return err
			}
		},
	}
}

// watchStream is a stream whose context also ends when the server drains.
type watchStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w watchStream) Context() context.Context { return w.ctx }

// reflectionDesc serves server reflection as a unary method on the native
// and Connect protocols: each call carries one ServerReflectionRequest and
// gets its one response, which is all a reflection client exchanges per
// question. (On gRPC the standard bidirectional stream is registered.)
func reflectionDesc(rs func() reflectionpb.ServerReflectionServer) *ServiceDesc {
	return &ServiceDesc{
		ServiceName: reflectionService,
		Metadata:    "grpc/reflection/v1/reflection.proto",
		Methods: []MethodDesc{{
			MethodName: "ServerReflectionInfo",
			NewRequest: func() any { return new(reflectionpb.ServerReflectionRequest) },
			Handler: func(_ any, ctx context.Context, req any) (any, error) {
				s := &oneShot{ctx: ctx, req: req.(*reflectionpb.ServerReflectionRequest)}
				if err := rs().ServerReflectionInfo(s); err != nil {
					return nil, err
				}
				if s.resp == nil {
					return nil, status.Err(codes.Internal, "server: reflection gave no answer")
				}
				return s.resp, nil
			},
		}},
	}
}

// newReflection returns grpc-go's reflection implementation over the
// services of gs (every Sluice service is registered there too).
func newReflection(gs *grpc.Server) *reflectionpb.ServerReflectionServer {
	rs := reflection.NewServerV1(reflection.ServerOptions{Services: gs})
	return &rs
}

// oneShot is a reflection stream that carries one request and one response.
type oneShot struct {
	ctx  context.Context
	req  *reflectionpb.ServerReflectionRequest
	resp *reflectionpb.ServerReflectionResponse
}

func (s *oneShot) Recv() (*reflectionpb.ServerReflectionRequest, error) {
	if s.req == nil {
		return nil, io.EOF
	}
	r := s.req
	s.req = nil
	return r, nil
}

func (s *oneShot) Send(r *reflectionpb.ServerReflectionResponse) error {
	if s.resp != nil {
		return errors.New("server: reflection sent two answers to one question")
	}
	s.resp = r
	return nil
}

func (s *oneShot) Context() context.Context   { return s.ctx }
func (s *oneShot) SetHeader(grpcmd.MD) error  { return nil }
func (s *oneShot) SendHeader(grpcmd.MD) error { return nil }
func (s *oneShot) SetTrailer(grpcmd.MD)       {}
func (s *oneShot) SendMsg(any) error          { return errors.New("server: not a stream") }
func (s *oneShot) RecvMsg(any) error          { return errors.New("server: not a stream") }
