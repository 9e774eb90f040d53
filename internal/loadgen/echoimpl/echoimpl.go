// Package echoimpl holds the load generator's Sluice rows: the echo example
// served by a Sluice server and called over the native protocol (Impl), by
// a stock grpc-go client (GRPCImpl), and by a stock connect-go client
// (ConnectImpl). Both rpcbench and `sluice demo` run them.
//
//	res, err := loadgen.Run(echoimpl.Impl(), loadgen.Config{Duration: 5 * time.Second})
package echoimpl

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"

	"connectrpc.com/connect"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/internal/grpctest/echogrpc"
	"github.com/sluicerpc/sluice/internal/loadgen"
	"github.com/sluicerpc/sluice/limit"
	"github.com/sluicerpc/sluice/observe/metrics"
	"github.com/sluicerpc/sluice/observe/trace"
	"github.com/sluicerpc/sluice/policy"
	"github.com/sluicerpc/sluice/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// errMismatch is returned by a call whose reply payload differs from the request's.
var errMismatch = errors.New("echoimpl: reply payload does not match request")

// Impl returns the "sluice" row: a Sluice server serving the echo example
// over the native protocol and one Sluice client with default options.
func Impl() loadgen.Impl {
	return loadgen.Impl{Name: "sluice", Start: func(payload []byte) (func(context.Context) error, func(), error) {
		return withServer(payload, func(addr string) (echoFunc, func(), error) {
			c, err := client.New(addr)
			if err != nil {
				return nil, nil, err
			}
			cl := echopb.NewEchoServiceClient(c)
			return cl.Echo, func() { c.Close() }, nil
		})
	}}
}

// GovernancePolicy is the TrafficPolicy of the "sluice+governance" row:
// every resilience layer on, none of them firing. Breakers per method and
// per instance (the defaults), a retry policy, and admission by a token bucket and a concurrency bound set far above what
// the benchmark reaches.
var GovernancePolicy = policy.TrafficPolicy{
	Service: echopb.EchoService_ServiceName,
	Rules: policy.Rules{
		Retries: &policy.Retries{MaxAttempts: 3},
	},
	Limits: &policy.Limits{
		Methods:        map[string]limit.Rate{"Echo": {QPS: 1e7}},
		MaxConcurrency: 100_000,
	},
}

// GovernanceImpl returns the "sluice+governance" row: the "sluice" row
// with GovernancePolicy applied on both sides.
func GovernanceImpl() loadgen.Impl {
	return loadgen.Impl{Name: "sluice+governance", Start: func(payload []byte) (func(context.Context) error, func(), error) {
		t, err := policy.NewTable([]policy.TrafficPolicy{GovernancePolicy})
		if err != nil {
			return nil, nil, err
		}
		return withServer(payload, func(addr string) (echoFunc, func(), error) {
			c, err := client.New(addr, client.WithPolicy(t))
			if err != nil {
				return nil, nil, err
			}
			cl := echopb.NewEchoServiceClient(c)
			return cl.Echo, func() { c.Close() }, nil
		}, server.WithPolicy(t))
	}}
}

// ObservabilityImpl returns the "sluice+observability" row: the "sluice"
// row with Prometheus metrics on both sides (one registry each) and
// OpenTelemetry tracing at the default 1% ratio (spans kept in memory and
// dropped; no exporter), installed with server.WithTracing and
// client.WithTracing (metrics outermost, then tracing, on both sides).
func ObservabilityImpl() loadgen.Impl {
	return ObservabilityPartsImpl("sluice+observability", true, true)
}

// ObservabilityPartsImpl returns ObservabilityImpl's row, named name, with
// only the metrics or only the tracing on when the other is false: what
// each costs alone (BenchmarkRows).
func ObservabilityPartsImpl(name string, withMetrics, withTracing bool) loadgen.Impl {
	return loadgen.Impl{Name: name, Start: func(payload []byte) (func(context.Context) error, func(), error) {
		var (
			copts    []client.Option
			sopts    []server.Option
			shutdown = func() {}
		)
		if withTracing {
			tp, err := trace.NewProvider(trace.ProviderConfig{})
			if err != nil {
				return nil, nil, err
			}
			tr, err := trace.New(trace.Config{TracerProvider: tp})
			if err != nil {
				return nil, nil, err
			}
			copts = append(copts, client.WithTracing(tr))
			sopts = append(sopts, server.WithTracing(tr))
			shutdown = func() { tp.Shutdown(context.Background()) }
		}
		if withMetrics {
			sm, err := metrics.New(metrics.Config{})
			if err != nil {
				return nil, nil, err
			}
			cm, err := metrics.New(metrics.Config{NoRuntimeMetrics: true})
			if err != nil {
				return nil, nil, err
			}
			copts = append(copts, client.WithMetrics(cm))
			sopts = append(sopts, server.WithMetrics(sm))
		}
		call, stop, err := withServer(payload, func(addr string) (echoFunc, func(), error) {
			c, err := client.New(addr, copts...)
			if err != nil {
				return nil, nil, err
			}
			cl := echopb.NewEchoServiceClient(c)
			return cl.Echo, func() { c.Close() }, nil
		}, sopts...)
		if err != nil {
			shutdown()
			return nil, nil, err
		}
		return call, func() { stop(); shutdown() }, nil
	}}
}

// GRPCImpl returns the "sluice-grpc" row: the same Sluice server called by
// a stock grpc-go client (default options, one ClientConn), so it measures
// the Sluice server's gRPC path against rpcbench's "grpc" row.
func GRPCImpl() loadgen.Impl {
	return loadgen.Impl{Name: "sluice-grpc", Start: func(payload []byte) (func(context.Context) error, func(), error) {
		return withServer(payload, func(addr string) (echoFunc, func(), error) {
			cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return nil, nil, err
			}
			cl := echogrpc.NewEchoServiceClient(cc)
			return func(ctx context.Context, in *echopb.EchoRequest, _ ...client.CallOption) (*echopb.EchoResponse, error) {
				return cl.Echo(ctx, in)
			}, func() { cc.Close() }, nil
		})
	}}
}

// ConnectImpl returns the "sluice-connect" row: the same Sluice server
// called by a stock connect-go client (protobuf body, HTTP/1.1, Go's
// default transport with enough idle connections for every caller).
func ConnectImpl() loadgen.Impl {
	return loadgen.Impl{Name: "sluice-connect", Start: func(payload []byte) (func(context.Context) error, func(), error) {
		return withServer(payload, func(addr string) (echoFunc, func(), error) {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.MaxIdleConnsPerHost = 256
			hc := &http.Client{Transport: tr}
			cl := connect.NewClient[echopb.EchoRequest, echopb.EchoResponse](hc, "http://"+addr+"/"+echopb.EchoService_ServiceName+"/Echo")
			return func(ctx context.Context, in *echopb.EchoRequest, _ ...client.CallOption) (*echopb.EchoResponse, error) {
				resp, err := cl.CallUnary(ctx, connect.NewRequest(in))
				if err != nil {
					return nil, err
				}
				return resp.Msg, nil
			}, tr.CloseIdleConnections, nil
		})
	}}
}

// echoFunc is one echo call, as the generated Sluice client has it.
type echoFunc func(context.Context, *echopb.EchoRequest, ...client.CallOption) (*echopb.EchoResponse, error)

// withServer starts an echo server on loopback, dials it with dial, and
// returns the loadgen call and stop functions.
func withServer(payload []byte, dial func(addr string) (echoFunc, func(), error), opts ...server.Option) (func(context.Context) error, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	opts = append([]server.Option{server.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	s := server.New(opts...)
	echopb.RegisterEchoServiceServer(s, &echo.Service{ServedBy: "sluice"})
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.Serve(ln)
	}()
	echoCall, closeClient, err := dial(ln.Addr().String())
	if err != nil {
		s.Stop()
		<-served
		return nil, nil, err
	}
	call := func(ctx context.Context) error {
		resp, err := echoCall(ctx, &echopb.EchoRequest{Message: "bench", Payload: payload})
		if err != nil {
			return err
		}
		if !bytes.Equal(resp.Payload, payload) {
			return errMismatch
		}
		return nil
	}
	stop := func() {
		closeClient()
		s.Stop()
		<-served
	}
	return call, stop, nil
}
