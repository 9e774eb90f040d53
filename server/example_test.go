package server_test

import (
	"context"
	"fmt"
	"net"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/server"
)

func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	s := server.New()
	echopb.RegisterEchoServiceServer(s, &echo.Service{ServedBy: "example"})
	go s.Serve(ln)
	defer s.GracefulStop(context.Background())

	c, err := client.New(ln.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	resp, err := echopb.NewEchoServiceClient(c).Echo(context.Background(), &echopb.EchoRequest{Message: "hello"})
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Message, "from", resp.ServedBy)
	// Output: hello from example
}
