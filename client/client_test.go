package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/sluicerpc/sluice/balancer/roundrobin"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/examples/echo/echotest"
	"github.com/sluicerpc/sluice/status"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTargets(t *testing.T) {
	a, b := echotest.Start(t, 0), echotest.Start(t, 0)
	tests := []struct {
		target  string
		wantErr string
		want    []string // addresses that must all answer
	}{
		{target: a, want: []string{a}},
		{target: a + "," + b, want: []string{a, b}},
		{target: " " + a + " , " + b + " ,", want: []string{a, b}},
		{target: "static:///" + a + "," + b, want: []string{a, b}},
		{target: "consul:///echo", wantErr: `no resolver for scheme "consul"`},
		{target: "", wantErr: "empty target"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			c, err := client.New(tt.target, client.WithBalancer(roundrobin.Builder{}))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New(%q) = %v, want error with %q", tt.target, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cl := echopb.NewEchoServiceClient(c)
			seen := map[string]int{}
			for i := 0; i < 10; i++ {
				resp, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "x"})
				if err != nil {
					t.Fatal(err)
				}
				seen[resp.ServedBy]++
			}
			for _, addr := range tt.want {
				if seen[addr] != 10/len(tt.want) {
					t.Errorf("round-robin: %s answered %d of 10 calls (%v)", addr, seen[addr], seen)
				}
			}
		})
	}
}

func TestMalformedMethodName(t *testing.T) {
	c, err := client.New(echotest.Start(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range []string{"", "/", "Echo", "/svc/", "svc/"} {
		err := c.Invoke(context.Background(), m, &echopb.EchoRequest{}, &echopb.EchoResponse{})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("Invoke(%q) = %v, want InvalidArgument", m, err)
		}
	}
}

func TestClosedClient(t *testing.T) {
	c, err := client.New(echotest.Start(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	cl := echopb.NewEchoServiceClient(c)
	if _, err := cl.Echo(context.Background(), &echopb.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := cl.Echo(context.Background(), &echopb.EchoRequest{}); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("call after Close = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// pushResolver hands snapshots to the client on demand.
type pushResolver struct {
	mu     sync.Mutex
	update func([]discovery.Instance)
	closed bool
}

func (r *pushResolver) Resolve(_ context.Context, _ string, update func([]discovery.Instance)) (io.Closer, error) {
	r.mu.Lock()
	r.update = update
	r.mu.Unlock()
	return r, nil
}

func (r *pushResolver) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return nil
}

func (r *pushResolver) push(addrs ...string) {
	ins := make([]discovery.Instance, len(addrs))
	for i, a := range addrs {
		ins[i] = discovery.Instance{Service: "echo", Addr: a}
	}
	r.update(ins)
}

func TestResolverSnapshots(t *testing.T) {
	a, b := echotest.Start(t, 0), echotest.Start(t, 0)
	r := &pushResolver{}
	c, err := client.New("test:///echo", client.WithResolver(r))
	if err != nil {
		t.Fatal(err)
	}
	cl := echopb.NewEchoServiceClient(c)
	if _, err := cl.Echo(context.Background(), &echopb.EchoRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("before any snapshot: %v, want Unavailable", err)
	}
	r.push(a)
	resp, err := cl.Echo(context.Background(), &echopb.EchoRequest{})
	if err != nil || resp.ServedBy != a {
		t.Fatalf("got %v, %v", resp, err)
	}
	r.push(b) // a leaves: its connections close, calls go to b
	for i := 0; i < 4; i++ {
		resp, err := cl.Echo(context.Background(), &echopb.EchoRequest{})
		if err != nil || resp.ServedBy != b {
			t.Fatalf("after the switch: %v, %v", resp, err)
		}
	}
	r.push()
	if _, err := cl.Echo(context.Background(), &echopb.EchoRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("empty snapshot: %v, want Unavailable", err)
	}
	c.Close()
	if !r.closed {
		t.Fatal("Close did not stop the resolver watch")
	}
}

func TestDialRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := client.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = echopb.NewEchoServiceClient(c).Echo(context.Background(), &echopb.EchoRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "dialing "+addr) {
		t.Fatalf("got %v", err)
	}
}

func TestDefaultBalancerUsesEveryInstance(t *testing.T) {
	a, b := echotest.Start(t, 0), echotest.Start(t, 0)
	c, err := client.New(a + "," + b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := echopb.NewEchoServiceClient(c)
	seen := map[string]int{}
	for i := 0; i < 200; i++ {
		resp, err := cl.Echo(context.Background(), &echopb.EchoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		seen[resp.ServedBy]++
	}
	if seen[a] == 0 || seen[b] == 0 {
		t.Fatalf("P2C left an instance unused: %v", seen)
	}
}
