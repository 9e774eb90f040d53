package etcd_test

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/discovery/etcd"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/server"
)

// tee is a Resolver that also hands every snapshot to a recorder.
type tee struct {
	discovery.Resolver
	rec *etcd.Recorder
}

func (t tee) Resolve(ctx context.Context, service string, update func([]discovery.Instance)) (io.Closer, error) {
	return t.Resolver.Resolve(ctx, service, func(ins []discovery.Instance) {
		t.rec.Update(ins)
		update(ins)
	})
}

func TestCallsSurviveEtcdRestart(t *testing.T) {
	n := etcd.StartTestEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := etcd.Config{Endpoints: n.Endpoints(), TTL: 3 * time.Second, Logger: etcd.Quiet}
	reg, err := etcd.NewRegistry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	res, err := etcd.NewResolver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()

	// Two servers; the second is registered only after the restart, to see
	// that the client's watch came back.
	var addrs []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		s := server.New()
		echopb.RegisterEchoServiceServer(s, &echo.Service{ServedBy: addr})
		go s.Serve(ln)
		t.Cleanup(s.Stop)
		addrs = append(addrs, addr)
	}
	if err := reg.Register(ctx, discovery.Instance{Service: "echo", Addr: addrs[0]}); err != nil {
		t.Fatal(err)
	}
	var rec etcd.Recorder
	c, err := client.New("etcd:///echo", client.WithResolver(tee{res, &rec}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ec := echopb.NewEchoServiceClient(c)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var servedBy sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopCalls := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopCalls()
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Generous: a call slowed by a starved CPU is not the point.
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				resp, err := ec.Echo(cctx, &echopb.EchoRequest{Message: "hi"})
				cancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					ok.Add(1)
					servedBy.Store(resp.ServedBy, true)
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	etcd.Eventually(t, 10*time.Second, func() bool { return ok.Load() > 100 }, "calls not flowing: %d ok, %d failed", ok.Load(), failed.Load())
	// Stopping is graceful (5 s while streams are open); then 1.5 s down.
	// The sleep is the outage, not a wait for a condition.
	n.Stop()
	time.Sleep(1500 * time.Millisecond)
	duringOutage := ok.Load()
	n.Restart(t)
	// Registering fails until etcd answers again; callers retry.
	etcd.Eventually(t, 15*time.Second, func() bool {
		return reg.Register(ctx, discovery.Instance{Service: "echo", Addr: addrs[1]}) == nil
	}, "cannot register after the restart")
	etcd.Eventually(t, 15*time.Second, func() bool { _, ok := servedBy.Load(addrs[1]); return ok },
		"the client never reached the instance registered after the restart")
	stopCalls()
	t.Logf("%d calls ok (%d by the end of the outage), %d failed", ok.Load(), duringOutage, failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d calls failed during the etcd restart; first: %v; servers %v; the client's snapshots: %v",
			failed.Load(), firstErr.Load(), addrs, rec.Snapshots())
	}
}
