package server_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/server"
)

// recordingRegistry records calls; events get each one as it happens.
type recordingRegistry struct {
	mu     sync.Mutex
	calls  []string
	last   discovery.Instance
	events chan string
}

func (r *recordingRegistry) Register(_ context.Context, in discovery.Instance) error {
	r.mu.Lock()
	r.calls = append(r.calls, "register "+in.Addr)
	r.last = in
	r.mu.Unlock()
	r.events <- "register"
	return nil
}

func (r *recordingRegistry) Deregister(_ context.Context, in discovery.Instance) error {
	r.mu.Lock()
	r.calls = append(r.calls, "deregister "+in.Addr)
	r.mu.Unlock()
	r.events <- "deregister"
	return nil
}

func TestRegistryLifecycle(t *testing.T) {
	reg := &recordingRegistry{events: make(chan string, 10)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	s := server.New(server.WithRegistry(reg, discovery.Instance{Service: "echo", Labels: map[string]string{"lane": "blue"}}),
		server.WithDeregisterGrace(300*time.Millisecond))
	echopb.RegisterEchoServiceServer(s, &testEcho{})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	if ev := <-reg.events; ev != "register" {
		t.Fatalf("first event %q", ev)
	}
	reg.mu.Lock()
	got := reg.last
	reg.mu.Unlock()
	if got.Service != "echo" || got.Addr != addr || got.Labels["lane"] != "blue" {
		t.Fatalf("registered %+v", got)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- s.GracefulStop(context.Background()) }()
	if ev := <-reg.events; ev != "deregister" {
		t.Fatalf("GracefulStop began with %q", ev)
	}
	// Withdrawn but still accepting during the grace: a client that has
	// not heard yet is served.
	cl := dial(t, addr)
	if _, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "late"}); err != nil {
		t.Fatalf("call during the deregistration grace: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	<-done
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if len(reg.calls) != 2 {
		t.Fatalf("calls %v: deregistered more than once?", reg.calls)
	}
}
