package client

import (
	"context"
	"strings"
	"sync"

	"github.com/sluicerpc/sluice/callinfo"
	sproto "github.com/sluicerpc/sluice/codec/proto"
	"github.com/sluicerpc/sluice/internal/transport"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/protocol/ttheader"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	grpcmd "google.golang.org/grpc/metadata"
)

// grpcConn calls over one grpc-go channel to one address.
type grpcConn struct {
	cc   *grpc.ClientConn
	done chan struct{}
	once sync.Once
}

func dialGRPC(addr string, o options) (conn, error) {
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(o.maxFrameSize)),
	}, o.grpcOptions...)
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "client: grpc channel to %s: %v", addr, err)
	}
	return &grpcConn{cc: cc, done: make(chan struct{})}, nil
}

func (g *grpcConn) Call(ctx context.Context, info *callinfo.Info, req, resp any) error {
	gctx := ctx
	tc := info.Trace
	if tc != nil && tc.Traceparent == "" {
		tc = nil
	}
	if md, ok := metadata.FromOutgoing(ctx); ok || info.Attempt > 1 || tc != nil || info.Caller != "" {
		if md == nil {
			md = metadata.MD{}
		}
		if info.Attempt > 1 {
			md.Set(ttheader.KeyAttempt, itoa(info.Attempt))
		}
		if info.Caller != "" {
			md.Set(ttheader.KeyCaller, info.Caller)
		}
		if tc != nil {
			// The call's own trace context replaces any the metadata has.
			for k := range md {
				if transport.IsTraceKey(k) {
					delete(md, k)
				}
			}
			md[metadata.KeyTraceparent] = []string{tc.Traceparent}
			if tc.Tracestate != "" {
				md[metadata.KeyTracestate] = []string{tc.Tracestate}
			}
		}
		gctx = grpcmd.NewOutgoingContext(ctx, grpcmd.MD(md))
	}
	// grpc-go reports message sizes to stats handlers alone, at the cost
	// of an allocation per event: the sizes are proto.Size's, the encoded
	// sizes its codec sends and reads (compression aside).
	info.SentBytes, info.ReceivedBytes = sproto.Size(req), 0
	var header grpcmd.MD
	err := g.cc.Invoke(gctx, fullMethod(info), req, resp, grpc.Header(&header))
	for k, v := range header {
		if k == "content-type" || strings.HasPrefix(k, "grpc-") {
			continue
		}
		if info.ResponseMetadata == nil {
			info.ResponseMetadata = metadata.MD{}
		}
		info.ResponseMetadata[k] = v
	}
	if err == nil {
		info.ReceivedBytes = sproto.Size(resp)
		return nil
	}
	if ctx.Err() != nil {
		return transport.ContextError(ctx, info)
	}
	st := status.Convert(err)
	return transport.CallerDeadline(ctx, info, status.Err(st.Code(), st.Message()))
}

func fullMethod(info *callinfo.Info) string {
	if info.FullMethod != "" && info.FullMethod[0] == '/' {
		return info.FullMethod
	}
	return "/" + info.Service + "/" + info.Method
}

func (g *grpcConn) Usable() bool { return g.cc.GetState() != connectivity.Shutdown }

// Idle is always true: HTTP/2 drains on its own (GOAWAY), nothing waits on it.
func (g *grpcConn) Idle() bool { return true }

func (g *grpcConn) Done() <-chan struct{} { return g.done }

func (g *grpcConn) Close() error {
	var err error
	g.once.Do(func() {
		close(g.done)
		err = g.cc.Close()
	})
	return err
}
