// Package echotest starts echo servers on loopback for tests.
//
//	addr := echotest.Start(t, 0)                 // echo.Service, ServedBy = addr
//	addr := echotest.Serve(t, func(string) echopb.EchoServiceServer { return myImpl{} })
package echotest

import (
	"log/slog"
	"net"
	"testing"

	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/server"
)

// Serve starts a Sluice server on 127.0.0.1 serving the implementation
// newImpl makes for its address, stops it when the test ends, and returns
// the address. The server logs nothing.
func Serve(t testing.TB, newImpl func(addr string) echopb.EchoServiceServer) string {
	t.Helper()
	return ServeWith(t, newImpl)
}

// ServeWith is Serve with server options added.
func ServeWith(t testing.TB, newImpl func(addr string) echopb.EchoServiceServer, opts ...server.Option) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	s := server.New(append([]server.Option{server.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	echopb.RegisterEchoServiceServer(s, newImpl(addr))
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return addr
}

// Start serves the example echo.Service, answering failRate of the calls
// with Unavailable, with ServedBy set to its address.
func Start(t testing.TB, failRate float64) string {
	t.Helper()
	return Serve(t, func(addr string) echopb.EchoServiceServer {
		return &echo.Service{ServedBy: addr, FailRate: failRate}
	})
}
