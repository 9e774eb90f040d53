// Command server serves the echo example.
//
//	go run ./examples/echo/server --addr 127.0.0.1:8080 --delay 2ms --fail-rate 0.05
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/server"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	failRate := flag.Float64("fail-rate", 0, "fraction of calls answered with Unavailable")
	delay := flag.Duration("delay", 0, "delay before each reply")
	flag.Parse()
	if err := run(*addr, *failRate, *delay); err != nil {
		fmt.Fprintln(os.Stderr, "echo server:", err)
		os.Exit(1)
	}
}

func run(addr string, failRate float64, delay time.Duration) error {
	if failRate < 0 || failRate > 1 {
		return fmt.Errorf("--fail-rate %v: want a fraction between 0 and 1", failRate)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s := server.New()
	echopb.RegisterEchoServiceServer(s, &echo.Service{ServedBy: ln.Addr().String(), FailRate: failRate, Delay: delay})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		slog.Info("echo server: draining")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.GracefulStop(ctx)
	}()
	slog.Info("echo server: serving", "addr", ln.Addr().String())
	if err := s.Serve(ln); err != nil && err != server.ErrServerStopped {
		return err
	}
	return nil
}
