// Package echoimpl is the load generator's Sluice row: the echo example
// served and called over the native protocol with default options. Both
// rpcbench and `sluice demo` run it.
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

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/internal/loadgen"
	"github.com/sluicerpc/sluice/server"
)

// errMismatch is returned by a call whose reply payload differs from the request's.
var errMismatch = errors.New("sluice: reply payload does not match request")

// Impl returns the "sluice" row: a Sluice server serving the echo example
// over the native protocol and one Sluice client with default options.
func Impl() loadgen.Impl {
	return loadgen.Impl{Name: "sluice", Start: start}
}

func start(payload []byte) (func(context.Context) error, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	s := server.New(server.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	echopb.RegisterEchoServiceServer(s, &echo.Service{ServedBy: "sluice"})
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.Serve(ln)
	}()
	c, err := client.New(ln.Addr().String())
	if err != nil {
		s.Stop()
		<-served
		return nil, nil, err
	}
	cl := echopb.NewEchoServiceClient(c)
	call := func(ctx context.Context) error {
		resp, err := cl.Echo(ctx, &echopb.EchoRequest{Message: "bench", Payload: payload})
		if err != nil {
			return err
		}
		if !bytes.Equal(resp.Payload, payload) {
			return errMismatch
		}
		return nil
	}
	stop := func() {
		c.Close()
		s.Stop()
		<-served
	}
	return call, stop, nil
}
