package etcd_test

import (
	"context"
	"log"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/discovery/etcd"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
)

// A server registers itself; a client finds it through a Resolver. It needs
// an etcd at $SLUICE_ETCD (default 127.0.0.1:2379), so it is not run.
func Example() {
	ctx := context.Background()
	cfg := etcd.Config{Endpoints: etcd.Endpoints("")}

	// Server side: registered until Close, through etcd restarts.
	reg, err := etcd.NewRegistry(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close() // deregisters
	in := discovery.Instance{Service: "echo", Addr: "10.0.0.7:8080", Labels: map[string]string{"version": "v2"}}
	if err := reg.Register(ctx, in); err != nil {
		log.Fatal(err)
	}

	// Client side: "etcd:///echo" names the service.
	res, err := etcd.NewResolver(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer res.Close()
	c, err := client.New("etcd:///echo", client.WithResolver(res))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	resp, err := echopb.NewEchoServiceClient(c).Echo(ctx, &echopb.EchoRequest{Message: "hi"})
	if err != nil {
		log.Fatal(err)
	}
	log.Println(resp.Message)
}
