package metrics_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/observe/metrics"
	"github.com/sluicerpc/sluice/server"
)

func Example() {
	m, err := metrics.New(metrics.Config{})
	if err != nil {
		panic(err)
	}
	// The server counts every call and answers GET /metrics on its port.
	srv := server.New(server.WithMetrics(m), server.WithLogger(slog.New(slog.DiscardHandler)))
	echopb.RegisterEchoServiceServer(srv, &echo.Service{ServedBy: "example"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	defer srv.Stop()

	// The client counts calls by the instance they went to.
	c, err := client.New(ln.Addr().String(), client.WithMiddleware(m.Client()))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	e := echopb.NewEchoServiceClient(c)
	for range 3 {
		if _, err := e.Echo(context.Background(), &echopb.EchoRequest{Message: "hi"}); err != nil {
			panic(err)
		}
	}

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "sluice_server_requests_total") ||
			strings.HasPrefix(line, "sluice_server_handling_seconds_count") {
			fmt.Println(line)
		}
	}
	// Output:
	// sluice_server_handling_seconds_count{method="Echo",service="sluice.examples.echo.v1.EchoService"} 3
	// sluice_server_requests_total{code="OK",method="Echo",peer="unknown",service="sluice.examples.echo.v1.EchoService"} 3
}
