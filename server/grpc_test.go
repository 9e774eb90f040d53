package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/internal/grpctest/echogrpc"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcmd "google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	grpcstatus "google.golang.org/grpc/status"
)

// dialGRPC opens a stock grpc-go channel.
func dialGRPC(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func TestStockGRPCClient(t *testing.T) {
	f := start(t)
	cl := echogrpc.NewEchoServiceClient(dialGRPC(t, f.addr))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	resp, err := cl.Echo(ctx, &echogrpc.EchoRequest{Message: "hi", Payload: []byte{1, 2}})
	if err != nil || resp.Message != "hi" || string(resp.Payload) != "\x01\x02" {
		t.Fatalf("got %v, %v", resp, err)
	}

	// Metadata both ways.
	mctx := grpcmd.AppendToOutgoingContext(ctx, "x-tenant", "acme")
	var header grpcmd.MD
	resp, err = cl.Echo(mctx, &echogrpc.EchoRequest{Message: "md"}, grpc.Header(&header))
	if err != nil || resp.Message != "acme" {
		t.Fatalf("metadata: %v, %v", resp, err)
	}
	if got := header.Get("x-reply"); len(got) != 2 || got[1] != "r2" {
		t.Errorf("response metadata %v", header)
	}

	// The deadline travels as grpc-timeout.
	dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
	defer dcancel()
	if resp, err := cl.Echo(dctx, &echogrpc.EchoRequest{Message: "deadline"}); err != nil || resp.Message != "3s" {
		t.Fatalf("deadline: %v, %v", resp, err)
	}

	// Codes map one to one.
	for c := codes.Canceled; c <= codes.Unauthenticated; c++ {
		_, err := cl.Echo(ctx, &echogrpc.EchoRequest{Message: "err:" + strconv.Itoa(int(c))})
		if st := grpcstatus.Convert(err); st.Code() != c || st.Message() != "asked for "+c.String() {
			t.Errorf("%v: got %v", c, err)
		}
	}

	// A panic is Internal and the server goes on.
	if _, err := cl.Echo(ctx, &echogrpc.EchoRequest{Message: "panic"}); grpcstatus.Code(err) != codes.Internal {
		t.Errorf("panic: %v", err)
	}
	// The server's deadline, from grpc-timeout, names itself.
	sctx, scancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer scancel()
	_, err = cl.Echo(sctx, &echogrpc.EchoRequest{Message: "block"})
	if grpcstatus.Code(err) != codes.DeadlineExceeded {
		t.Errorf("blocked call: %v", err)
	}
	if _, err := cl.Echo(ctx, &echogrpc.EchoRequest{Message: "after"}); err != nil {
		t.Fatal(err)
	}
}

func TestSluiceClientOverGRPC(t *testing.T) {
	// Against a plain grpc-go server, not a Sluice one.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	echogrpc.RegisterEchoServiceServer(gs, plainGRPCEcho{})
	go gs.Serve(ln)
	defer gs.Stop()

	var sawProtocol string
	c, err := client.New(ln.Addr().String(), client.WithProtocol(client.GRPC), client.WithMiddleware(protocolRecorder(&sawProtocol)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := echopb.NewEchoServiceClient(c)
	ctx := metadata.AppendToOutgoing(context.Background(), "x-tenant", "acme")
	var md metadata.MD
	resp, err := cl.Echo(ctx, &echopb.EchoRequest{Message: "hi"}, client.ResponseMetadata(&md))
	if err != nil || resp.Message != "hi|acme" || resp.ServedBy != "grpc-go" {
		t.Fatalf("got %v, %v", resp, err)
	}
	if md.Value("x-served") != "yes" {
		t.Errorf("response metadata %v", md)
	}
	if sawProtocol != "grpc" {
		t.Errorf("middleware saw protocol %q", sawProtocol)
	}
	_, err = cl.Echo(context.Background(), &echopb.EchoRequest{Message: "fail"})
	if status.Code(err) != codes.FailedPrecondition || !errors.Is(err, status.ErrFailedPrecondition) {
		t.Errorf("error: %v", err)
	}
	dctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err = cl.Echo(dctx, &echopb.EchoRequest{Message: "slow"})
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "caller's deadline of 30ms") {
		t.Errorf("deadline: %v", err)
	}
}

type plainGRPCEcho struct {
	echogrpc.UnimplementedEchoServiceServer
}

func (plainGRPCEcho) Echo(ctx context.Context, req *echogrpc.EchoRequest) (*echogrpc.EchoResponse, error) {
	switch req.Message {
	case "fail":
		return nil, grpcstatus.Error(codes.FailedPrecondition, "not now")
	case "slow":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	md, _ := grpcmd.FromIncomingContext(ctx)
	grpc.SetHeader(ctx, grpcmd.Pairs("x-served", "yes"))
	return &echogrpc.EchoResponse{Message: req.Message + "|" + strings.Join(md.Get("x-tenant"), ","), ServedBy: "grpc-go"}, nil
}

func TestHealthOnEveryProtocol(t *testing.T) {
	f := start(t)
	check := map[string]func() (healthpb.HealthCheckResponse_ServingStatus, error){
		"grpc": func() (healthpb.HealthCheckResponse_ServingStatus, error) {
			r, err := healthpb.NewHealthClient(dialGRPC(t, f.addr)).Check(context.Background(), &healthpb.HealthCheckRequest{Service: echopb.EchoService_ServiceName})
			return r.GetStatus(), err
		},
		"native": func() (healthpb.HealthCheckResponse_ServingStatus, error) {
			c, err := client.New(f.addr)
			if err != nil {
				return 0, err
			}
			defer c.Close()
			var r healthpb.HealthCheckResponse
			err = c.Invoke(context.Background(), "/grpc.health.v1.Health/Check", &healthpb.HealthCheckRequest{Service: echopb.EchoService_ServiceName}, &r)
			return r.Status, err
		},
	}
	check["connect"] = func() (healthpb.HealthCheckResponse_ServingStatus, error) {
		res, err := http.Post("http://"+f.addr+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader(`{"service":"sluice.examples.echo.v1.EchoService"}`))
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		var out struct{ Status string }
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
			return 0, err
		}
		return healthpb.HealthCheckResponse_ServingStatus(healthpb.HealthCheckResponse_ServingStatus_value[out.Status]), nil
	}
	for name, fn := range check {
		if st, err := fn(); err != nil || st != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%s: %v, %v", name, st, err)
		}
	}
	// During GracefulStop health says NOT_SERVING: a Watch stream opened
	// before gets it, then ends, so the graceful stop is not held up by it.
	watch, err := healthpb.NewHealthClient(dialGRPC(t, f.addr)).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first watch message: %v, %v", r, err)
	}
	f.impl.started = make(chan string, 1)
	cl := dial(t, f.addr)
	inflight := make(chan error, 1)
	go func() {
		_, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "sleep:200ms"})
		inflight <- err
	}()
	<-f.impl.started
	stopped := make(chan error, 1)
	go func() { stopped <- f.srv.GracefulStop(context.Background()) }()
	sawNotServing := false
	for {
		r, err := watch.Recv()
		if err != nil {
			break
		}
		if r.Status == healthpb.HealthCheckResponse_NOT_SERVING {
			sawNotServing = true
		}
	}
	if !sawNotServing {
		t.Error("no NOT_SERVING while draining")
	}
	if err := <-inflight; err != nil {
		t.Errorf("call in flight: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

func TestReflection(t *testing.T) {
	f := start(t)
	// gRPC: the standard bidirectional stream.
	stream, err := reflectionpb.NewServerReflectionClient(dialGRPC(t, f.addr)).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	stream.CloseSend()
	want := []string{echopb.EchoService_ServiceName, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"}
	assertServices(t, "grpc", resp, want)

	// Native: one question per call.
	c, err := client.New(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var nresp reflectionpb.ServerReflectionResponse
	err = c.Invoke(context.Background(), "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
		&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}, &nresp)
	if err != nil {
		t.Fatal(err)
	}
	assertServices(t, "native", &nresp, want)
	err = c.Invoke(context.Background(), "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
		&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: echopb.EchoService_ServiceName}}, &nresp)
	if err != nil || len(nresp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Fatalf("file for symbol: %v, %v", nresp.GetErrorResponse(), err)
	}
}

func assertServices(t *testing.T, proto string, resp *reflectionpb.ServerReflectionResponse, want []string) {
	t.Helper()
	got := map[string]bool{}
	for _, s := range resp.GetListServicesResponse().GetService() {
		got[s.Name] = true
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("%s: reflection lists %v, missing %s", proto, got, w)
		}
	}
}
