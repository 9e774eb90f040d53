// Command server serves the echo example.
//
//	go run ./examples/echo/server --addr 127.0.0.1:8080 --delay 2ms --fail-rate 0.05
//	go run ./examples/echo/server --addr 127.0.0.1:8081 \
//	    --registry etcd://127.0.0.1:2379 --service echo --labels version=v2,lane=blue
//	go run ./examples/echo/server --access-log --otlp http://127.0.0.1:4317
//
// --access-log writes one JSON line per call to stderr (trace_id, span_id,
// service, method, code, duration, peer, protocol), and turns the other
// log lines into JSON too. --otlp exports traces (1% of new traces, every
// failed call) to an OpenTelemetry collector. Either one turns tracing on:
// the server continues its callers' traces, so its lines carry their
// trace ids.
//
// Prometheus metrics are served at /metrics on the server's own port (its
// HTTP/1 side); --admin 127.0.0.1:9090 adds an admin listener with
// /metrics and /debug/pprof (keep it on loopback).
//
// On SIGINT or SIGTERM it withdraws its registration first, then drains.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/discovery/etcd"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/observe/log"
	"github.com/sluicerpc/sluice/observe/metrics"
	"github.com/sluicerpc/sluice/observe/trace"
	"github.com/sluicerpc/sluice/server"
)

func main() {
	var f flags
	flag.StringVar(&f.addr, "addr", "127.0.0.1:8080", "listen address")
	flag.Float64Var(&f.failRate, "fail-rate", 0, "fraction of calls answered with Unavailable")
	flag.DurationVar(&f.delay, "delay", 0, "delay before each reply")
	flag.StringVar(&f.registry, "registry", "", "register in this etcd, e.g. etcd://127.0.0.1:2379")
	flag.StringVar(&f.service, "service", "echo", "service name in the registry")
	flag.StringVar(&f.labels, "labels", "", "instance labels, e.g. version=v2,lane=blue")
	flag.IntVar(&f.weight, "weight", 0, "instance weight (0: the default, 100)")
	flag.BoolVar(&f.accessLog, "access-log", false, "log every call as a JSON line on stderr")
	flag.StringVar(&f.otlp, "otlp", "", "export traces over OTLP/gRPC, e.g. http://127.0.0.1:4317")
	flag.StringVar(&f.admin, "admin", "", "admin listener with /metrics and /debug/pprof, e.g. 127.0.0.1:9090 (loopback!)")
	flag.Parse()
	if err := run(f); err != nil {
		fmt.Fprintln(os.Stderr, "echo server:", err)
		os.Exit(1)
	}
}

type flags struct {
	addr, registry, service, labels string
	failRate                        float64
	delay                           time.Duration
	weight                          int
	accessLog                       bool
	otlp                            string
	admin                           string
}

func run(f flags) error {
	if f.failRate < 0 || f.failRate > 1 {
		return fmt.Errorf("--fail-rate %v: want a fraction between 0 and 1", f.failRate)
	}
	labels, err := parseLabels(f.labels)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return err
	}
	opts, shutdown, err := observability(f, os.Stderr)
	if err != nil {
		return err
	}
	defer shutdown()
	m, err := metrics.New(metrics.Config{})
	if err != nil {
		return err
	}
	opts = append(opts, server.WithMetrics(m))
	if f.admin != "" {
		opts = append(opts, server.WithAdminAddr(f.admin))
	}
	if f.registry != "" {
		if !strings.HasPrefix(f.registry, "etcd://") {
			return fmt.Errorf("--registry %q: want etcd://host:port[,host:port]", f.registry)
		}
		reg, err := etcd.NewRegistry(etcd.Config{Endpoints: etcd.Endpoints(f.registry)})
		if err != nil {
			return err
		}
		defer reg.Close()
		opts = append(opts, server.WithRegistry(reg, discovery.Instance{Service: f.service, Weight: f.weight, Labels: labels}))
	}
	s := server.New(opts...)
	echopb.RegisterEchoServiceServer(s, &echo.Service{ServedBy: ln.Addr().String(), FailRate: f.failRate, Delay: f.delay})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		slog.Info("echo server: deregistering and draining")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.GracefulStop(ctx)
	}()
	slog.Info("echo server: serving", "addr", ln.Addr().String(), "service", f.service, "labels", labels)
	if err := s.Serve(ln); err != nil && err != server.ErrServerStopped {
		return err
	}
	return nil
}

// observability returns the server options --access-log and --otlp ask
// for, and a function that flushes what is left to export. The access log
// and, with it, every other log line go to logOut as JSON.
func observability(f flags, logOut io.Writer) ([]server.Option, func(), error) {
	if !f.accessLog && f.otlp == "" {
		return nil, func() {}, nil
	}
	pc := trace.ProviderConfig{}
	if f.otlp != "" {
		exp, err := trace.NewOTLPExporter(context.Background(), f.otlp)
		if err != nil {
			return nil, nil, fmt.Errorf("--otlp: %w", err)
		}
		pc.Exporter = exp
	}
	tp, err := trace.NewProvider(pc)
	if err != nil {
		return nil, nil, err
	}
	shutdown := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tp.Shutdown(ctx)
	}
	tr, err := trace.New(trace.Config{TracerProvider: tp})
	if err != nil {
		shutdown()
		return nil, nil, err
	}
	opts := []server.Option{server.WithTracing(tr)} // first in the chain: the access log sees the span
	if f.accessLog {
		logger := slog.New(log.Handler(slog.NewJSONHandler(logOut, nil)))
		slog.SetDefault(logger)
		opts = append(opts, server.WithMiddleware(log.AccessLog(logger)), server.WithLogger(logger))
	}
	return opts, shutdown, nil
}

// parseLabels parses "k=v,k2=v2".
func parseLabels(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--labels: %q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}
