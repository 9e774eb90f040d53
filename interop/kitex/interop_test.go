package kitex_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	kclient "github.com/cloudwego/kitex/client"
	"github.com/cloudwego/kitex/pkg/kerrors"
	"github.com/cloudwego/kitex/pkg/klog"
	"github.com/cloudwego/kitex/pkg/remote"
	"github.com/cloudwego/kitex/pkg/transmeta"
	kserver "github.com/cloudwego/kitex/server"
	"github.com/cloudwego/kitex/transport"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/interop/kitex/kitex_gen/echo"
	"github.com/sluicerpc/sluice/interop/kitex/kitex_gen/echo/echoservice"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/server"
	"github.com/sluicerpc/sluice/status"
)

// callTimeout bounds every call; setupTimeout bounds starting and stopping a peer.
const (
	callTimeout  = 5 * time.Second
	setupTimeout = 5 * time.Second
)

// kitexBackground are the goroutines Kitex v0.16.3 and netpoll start once
// per process and do not stop when every client and server is closed.
// Nothing else may be left running when the tests end: not Sluice's
// goroutines, nor Kitex's per-server or per-connection ones.
var kitexBackground = []goleak.Option{
	// client/rpctimeout.go: var workerPool = newTimeoutPool(128, time.Minute).
	// A package-level pool that runs every Kitex client call under its RPC
	// timeout; idle workers linger for a minute, its ticker forever.
	goleak.IgnoreTopFunction("github.com/cloudwego/kitex/client.(*timeoutPool).createWorker.func1"),
	goleak.IgnoreTopFunction("github.com/cloudwego/kitex/client.(*timeoutPool).createTicker.func1"),
	// pkg/loadbalance/lbcache: balancer factories are cached per resolver
	// (here, per WithHostPorts target) for the process's lifetime, each
	// with a watcher goroutine; closing the client does not release them.
	goleak.IgnoreTopFunction("github.com/cloudwego/kitex/pkg/loadbalance/lbcache.(*BalancerFactory).watcher"),
	// Those cached balancers also stay registered with lbcache's shared
	// refresh ticker, so it never stops. (The same function runs the long
	// connection pool's ticker, which does stop once every pool is closed.)
	goleak.IgnoreTopFunction("github.com/cloudwego/kitex/pkg/utils.(*SharedTicker).Tick"),
	// netpoll's epoll loops, started at first use and never stopped. Their
	// top frame is syscall.Syscall6, so match the netpoll frame below it.
	goleak.IgnoreAnyFunction("github.com/cloudwego/netpoll.(*defaultPoll).Wait"),
}

func TestMain(m *testing.M) {
	klog.SetLevel(klog.LevelWarn) // Kitex logs every server start at Info
	goleak.VerifyTestMain(m, kitexBackground...)
}

// payload is sent in every echo so both protobuf fields are exercised.
var payload = bytes.Repeat([]byte{0x00, 0xff, 0x10, 0x00}, 64)

// sluiceEcho is the Sluice implementation: it echoes, and answers "fail"
// with NotFound.
type sluiceEcho struct{}

func (sluiceEcho) Echo(_ context.Context, req *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	if req.Message == "fail" {
		return nil, status.Err(codes.NotFound, "sluice: nothing to echo for fail")
	}
	return &echopb.EchoResponse{Message: req.Message, Payload: req.Payload, ServedBy: "sluice"}, nil
}

// kitexEcho is the Kitex implementation: it echoes, answers "fail" with a
// plain error and "biz" with a Kitex business status error.
type kitexEcho struct {
	servedBy string // default "kitex"
}

func (k *kitexEcho) Echo(_ context.Context, req *echo.EchoRequest) (*echo.EchoResponse, error) {
	switch req.Message {
	case "fail":
		return nil, errors.New("kitex: nothing to echo for fail")
	case "biz":
		return nil, kerrors.NewBizStatusError(1234, "kitex: business failure")
	}
	servedBy := k.servedBy
	if servedBy == "" {
		servedBy = "kitex"
	}
	return &echo.EchoResponse{Message: req.Message, Payload: req.Payload, ServedBy: servedBy}, nil
}

// startSluice serves sluiceEcho on a loopback port until the test ends.
func startSluice(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := server.New()
	echopb.RegisterEchoServiceServer(s, sluiceEcho{})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Stop()
		select {
		case err := <-done:
			if !errors.Is(err, server.ErrServerStopped) {
				t.Errorf("sluice Serve returned %v", err)
			}
		case <-time.After(setupTimeout):
			t.Errorf("sluice Serve still running %v after Stop", setupTimeout)
		}
	})
	return ln.Addr().String()
}

// startKitex serves kitexEcho with a real Kitex server on a loopback port
// until the test ends, registered as the generated server does.
func startKitex(t *testing.T, opts ...kserver.Option) string {
	t.Helper()
	return serveKitex(t, func(svr kserver.Server) error {
		return echoservice.RegisterService(svr, &kitexEcho{}) // Kitex wants a pointer handler
	}, opts...)
}

// serveKitex runs a Kitex server with the services register adds until the
// test ends. It returns once the server has answered a call, so Stop
// cannot race Run's start-up.
func serveKitex(t *testing.T, register func(kserver.Server) error, opts ...kserver.Option) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]kserver.Option{
		kserver.WithListener(ln),
		kserver.WithExitWaitTime(10 * time.Millisecond),
		// The default exit signal starts a goroutine per server that waits
		// for SIGINT/SIGTERM/SIGHUP forever (and swallows them). Stop ends Run.
		kserver.WithExitSignal(func() <-chan error { return nil }),
	}, opts...)
	svr := kserver.NewServer(opts...)
	if err := register(svr); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svr.Run() }()
	t.Cleanup(func() {
		if err := svr.Stop(); err != nil {
			t.Errorf("kitex Stop: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("kitex Run returned %v", err)
			}
		case <-time.After(setupTimeout):
			t.Errorf("kitex Run still running %v after Stop", setupTimeout)
		}
	})
	// Readiness: the call names the service as Kitex does ("EchoService"),
	// which every Kitex server configuration accepts.
	addr := ln.Addr().String()
	c := newSluiceClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := c.Invoke(ctx, "/EchoService/Echo", &echopb.EchoRequest{Message: "ready"}, new(echopb.EchoResponse)); err != nil {
		t.Fatalf("kitex server at %s not ready: %v", addr, err)
	}
	return addr
}

func newSluiceClient(t *testing.T, addr string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// kitexClientCases are the Kitex client configurations tried against a
// Sluice server. For protobuf, Kitex v0.16.3 adds TTHeaderFramed whatever
// is configured (client.initTransportProtocol), so all three send TTHeader;
// the meta handler adds the service name, method, caller and timeout keys.
var kitexClientCases = []struct {
	name string
	opts []kclient.Option
}{
	{"default", nil},
	{"ttheader", []kclient.Option{kclient.WithTransportProtocol(transport.TTHeader)}},
	{"ttheader+meta", []kclient.Option{
		kclient.WithTransportProtocol(transport.TTHeader),
		kclient.WithMetaHandler(transmeta.ClientTTHeaderHandler),
	}},
}

// kitexServerCases are the Kitex server configurations a Sluice client calls.
var kitexServerCases = []struct {
	name string
	opts []kserver.Option
}{
	{"default", nil},
	{"meta", []kserver.Option{kserver.WithMetaHandler(transmeta.ServerTTHeaderHandler)}},
}

// newKitexClient returns a raw Kitex client (long connections, Kitex's
// default) for EchoService whose service info also lists a method
// "Missing" that no server implements, so the client can send a call for
// it. Calls go through kc.Call exactly as the generated client makes them.
func newKitexClient(t *testing.T, addr string, opts ...kclient.Option) kclient.Client {
	t.Helper()
	// A fresh ServiceInfo, methods map included. NewServiceInfo, as the
	// generated client uses: NewServiceInfoForClient leaves out Echo,
	// which Kitex marks StreamingUnary.
	info := echoservice.NewServiceInfo()
	info.Methods["Missing"] = info.Methods["Echo"]
	opts = append([]kclient.Option{
		kclient.WithDestService("EchoService"),
		kclient.WithHostPorts(addr),
		kclient.WithRPCTimeout(callTimeout),
		// Kitex's default is 50ms, which 200 simultaneous dials under
		// -race can exceed; Kitex would then retry and hide it.
		kclient.WithConnectTimeout(time.Second),
	}, opts...)
	kc, err := kclient.NewClient(info, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, ok := kc.(io.Closer); ok {
			c.Close()
		}
	})
	return kc
}

func kitexCall(kc kclient.Client, method string, req *echo.EchoRequest) (*echo.EchoResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var res echoservice.EchoResult
	if err := kc.Call(ctx, method, &echoservice.EchoArgs{Req: req}, &res); err != nil {
		return nil, err
	}
	return res.GetSuccess(), nil
}

func sluiceCall(c *client.Client, req *echopb.EchoRequest, opts ...client.CallOption) (*echopb.EchoResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return echopb.NewEchoServiceClient(c).Echo(ctx, req, opts...)
}

func TestKitexClientCallsSluiceServer(t *testing.T) {
	addr := startSluice(t)
	for _, tc := range kitexClientCases {
		t.Run(tc.name, func(t *testing.T) {
			kc := newKitexClient(t, addr, tc.opts...)
			wantEcho := func(when string) {
				t.Helper()
				resp, err := kitexCall(kc, "Echo", &echo.EchoRequest{Message: "hello", Payload: payload})
				if err != nil {
					t.Fatalf("%s: Echo: %v", when, err)
				}
				if resp.Message != "hello" || !bytes.Equal(resp.Payload, payload) || resp.ServedBy != "sluice" {
					t.Fatalf("%s: Echo returned message=%q served_by=%q payload %d bytes", when, resp.Message, resp.ServedBy, len(resp.Payload))
				}
			}
			wantEcho("first call")

			// Sluice answers Unimplemented, sent as exception type 1.
			_, err := kitexCall(kc, "Missing", &echo.EchoRequest{Message: "hello"})
			var te *remote.TransError
			if !errors.As(err, &te) || te.TypeID() != remote.UnknownMethod || !strings.Contains(err.Error(), "unknown method Missing") {
				t.Fatalf("Missing: got %v (%T), want a remote.TransError of type UnknownMethod (%d)", err, err, remote.UnknownMethod)
			}
			wantEcho("after Missing")

			// Sluice's NotFound reaches Kitex as exception type 6
			// (InternalError) with the handler's message; the gRPC code
			// travels only in the sluice-code header, which Kitex ignores.
			_, err = kitexCall(kc, "Echo", &echo.EchoRequest{Message: "fail"})
			if !errors.As(err, &te) || te.TypeID() != remote.InternalError || !strings.Contains(err.Error(), "sluice: nothing to echo for fail") {
				t.Fatalf("handler error: got %v (%T), want a remote.TransError of type InternalError (%d) with the Sluice message", err, err, remote.InternalError)
			}
			wantEcho("after handler error")
		})
	}
}

// TestKitexGeneratedClientCallsSluiceServer uses the client as Kitex users
// get it, echoservice.NewClient, with short connections: each call dials,
// and Kitex closes the connection after the reply. (The generated client
// cannot be closed, so it must hold no pool.)
func TestKitexGeneratedClientCallsSluiceServer(t *testing.T) {
	addr := startSluice(t)
	kc, err := echoservice.NewClient("EchoService",
		kclient.WithHostPorts(addr),
		kclient.WithRPCTimeout(callTimeout),
		kclient.WithShortConnection())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		resp, err := kc.Echo(ctx, &echo.EchoRequest{Message: "hello", Payload: payload})
		cancel()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if resp.Message != "hello" || !bytes.Equal(resp.Payload, payload) || resp.ServedBy != "sluice" {
			t.Fatalf("call %d returned message=%q served_by=%q payload %d bytes", i, resp.Message, resp.ServedBy, len(resp.Payload))
		}
	}
}

func TestSluiceClientCallsKitexServer(t *testing.T) {
	for _, tc := range kitexServerCases {
		t.Run(tc.name, func(t *testing.T) {
			c := newSluiceClient(t, startKitex(t, tc.opts...))
			wantEcho := func(when string) {
				t.Helper()
				resp, err := sluiceCall(c, &echopb.EchoRequest{Message: "hello", Payload: payload})
				if err != nil {
					t.Fatalf("%s: Echo: %v", when, err)
				}
				if resp.Message != "hello" || !bytes.Equal(resp.Payload, payload) || resp.ServedBy != "kitex" {
					t.Fatalf("%s: Echo returned message=%q served_by=%q payload %d bytes", when, resp.Message, resp.ServedBy, len(resp.Payload))
				}
			}
			wantEcho("first call")

			// Kitex sends a handler's plain error as exception type 6
			// (InternalError), its message prefixed "biz error: ";
			// Sluice maps type 6 to Internal.
			_, err := sluiceCall(c, &echopb.EchoRequest{Message: "fail"})
			if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "biz error: kitex: nothing to echo for fail") {
				t.Fatalf("handler error: got code %v: %v; want Internal with the Kitex handler's message", status.Code(err), err)
			}
			wantEcho("after handler error")
		})
	}
}

// TestSluiceClientUnknownMethodOnKitexServer calls a method the Kitex
// server lacks. Kitex answers with exception type 20 (UnknownService: the
// full service name Sluice sends is not one Kitex knows, and no service has
// the method); the Sluice caller must see Unimplemented.
func TestSluiceClientUnknownMethodOnKitexServer(t *testing.T) {
	tp := startTap(t, startKitex(t))
	c := newSluiceClient(t, tp.Addr(), client.WithConnsPerAddr(1))
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	err := c.Invoke(ctx, "/sluice.examples.echo.v1.EchoService/Missing", &echopb.EchoRequest{Message: "hello"}, new(echopb.EchoResponse))
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("Missing: got code %v (%v), want Unimplemented\nKitex replied: %s", status.Code(err), err, tp.Frames())
	}
}

// TestSluiceClientOnMultiServiceKitexServer calls a Kitex server hosting
// EchoService and a second service, OtherEchoService, that also has a
// method Echo. Kitex refuses to start such a server unless told how to
// route: by service name only (WithRefuseTrafficWithoutServiceName), or
// with a fallback service for calls that carry no service name. Kitex
// finds a service by the TTHeader "isn" key, which Kitex clients set to
// the IDL service name ("EchoService") and Sluice clients to the full
// proto name ("sluice.examples.echo.v1.EchoService"). Kitex does not know
// that name, and method Echo is not unique, so in both set-ups it answers
// exception type 20 (UnknownService). A one-service Kitex server, as in
// the other tests, places the call by its unique method name instead. A
// Sluice client made with client.WithShortServiceName sends the short name
// and reaches the service.
func TestSluiceClientOnMultiServiceKitexServer(t *testing.T) {
	cases := []struct {
		name     string
		opts     []kserver.Option
		otherReg []kserver.RegisterOption
	}{
		{"refuse-without-service-name", []kserver.Option{kserver.WithRefuseTrafficWithoutServiceName()}, nil},
		{"fallback-service", nil, []kserver.RegisterOption{kserver.WithFallbackService()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := append([]kserver.Option{kserver.WithMetaHandler(transmeta.ServerTTHeaderHandler)}, tc.opts...)
			addr := serveKitex(t, func(svr kserver.Server) error {
				if err := echoservice.RegisterService(svr, &kitexEcho{}); err != nil {
					return err
				}
				other := echoservice.NewServiceInfo()
				other.ServiceName = "OtherEchoService"
				return svr.RegisterService(other, &kitexEcho{servedBy: "kitex-other"}, tc.otherReg...)
			}, opts...)

			// Reference: a Kitex client with the TTHeader meta handler reaches EchoService.
			kc := newKitexClient(t, addr, kclient.WithTransportProtocol(transport.TTHeader), kclient.WithMetaHandler(transmeta.ClientTTHeaderHandler))
			if resp, err := kitexCall(kc, "Echo", &echo.EchoRequest{Message: "hello"}); err != nil || resp.ServedBy != "kitex" {
				t.Fatalf("kitex client: served_by=%q, err=%v; want served by EchoService", resp.GetServedBy(), err)
			}
			// So does a Sluice client naming the service as Kitex does.
			tp := startTap(t, addr)
			c := newSluiceClient(t, tp.Addr(), client.WithConnsPerAddr(1))
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			var resp echopb.EchoResponse
			if err := c.Invoke(ctx, "/EchoService/Echo", &echopb.EchoRequest{Message: "hello"}, &resp); err != nil || resp.ServedBy != "kitex" {
				t.Fatalf("sluice client, service EchoService: served_by=%q, err=%v; want served by EchoService", resp.ServedBy, err)
			}
			// The generated client sends the full name by default: Kitex
			// does not know it, and the caller sees Unimplemented.
			if _, err := sluiceCall(c, &echopb.EchoRequest{Message: "hello"}); status.Code(err) != codes.Unimplemented {
				t.Errorf("sluice generated client, full name: code %v: %v; want Unimplemented\nKitex replied: %s", status.Code(err), err, tp.Frames())
			}
			// With WithShortServiceName it sends "EchoService" and is served.
			short := newSluiceClient(t, addr, client.WithShortServiceName())
			got, err := sluiceCall(short, &echopb.EchoRequest{Message: "hello"})
			if err != nil || got.ServedBy != "kitex" {
				t.Errorf("sluice generated client, short name: served_by=%q, code %v: %v; want served by EchoService", got.GetServedBy(), status.Code(err), err)
			}
		})
	}
}

// TestKitexBizStatusErrorReachesSluiceClient has the Kitex handler return
// kerrors.NewBizStatusError(1234, ...). With the TTHeader meta handler on
// both Kitex sides this is how Kitex reports business errors: a Reply with
// an empty body and the "biz-status"/"biz-message" header keys. (Without
// the server's meta handler Kitex puts nothing on the wire, and a Kitex
// client sees success too.)
func TestKitexBizStatusErrorReachesSluiceClient(t *testing.T) {
	addr := startKitex(t, kserver.WithMetaHandler(transmeta.ServerTTHeaderHandler))

	// Reference: the Kitex client sees the business error.
	kc := newKitexClient(t, addr, kclient.WithTransportProtocol(transport.TTHeader), kclient.WithMetaHandler(transmeta.ClientTTHeaderHandler))
	_, err := kitexCall(kc, "Echo", &echo.EchoRequest{Message: "biz"})
	if be, ok := kerrors.FromBizStatusError(err); !ok || be.BizStatusCode() != 1234 || be.BizMessage() != "kitex: business failure" {
		t.Fatalf("kitex client: got %v, want BizStatusError 1234", err)
	}

	tp := startTap(t, addr)
	c := newSluiceClient(t, tp.Addr(), client.WithConnsPerAddr(1))
	var md metadata.MD
	resp, err := sluiceCall(c, &echopb.EchoRequest{Message: "biz"}, client.ResponseMetadata(&md))
	if status.Code(err) != codes.Unknown || !strings.Contains(err.Error(), "business status 1234: kitex: business failure") || md.Value("biz-status") != "1234" {
		t.Errorf("sluice client: got err=%v resp={%v} response metadata=%v; want an error carrying the business status\nKitex replied: %s", err, resp, md, tp.Frames())
	}
}

// TestConcurrentCalls runs many calls at once in both directions.
func TestConcurrentCalls(t *testing.T) {
	const goroutines, calls = 200, 10
	run := func(t *testing.T, call func(msg string) (string, error)) {
		var wg sync.WaitGroup
		errs := make(chan error, goroutines*calls)
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range calls {
					msg := fmt.Sprintf("g%d-c%d", g, i)
					got, err := call(msg)
					if err == nil && got != msg {
						err = fmt.Errorf("sent %q, got %q back", msg, got)
					}
					if err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		n := 0
		for err := range errs {
			if n < 5 {
				t.Error(err)
			}
			n++
		}
		if n > 0 {
			t.Fatalf("%d of %d calls failed", n, goroutines*calls)
		}
	}
	for _, tc := range kitexClientCases {
		t.Run("kitex-to-sluice/"+tc.name, func(t *testing.T) {
			kc := newKitexClient(t, startSluice(t), tc.opts...)
			run(t, func(msg string) (string, error) {
				resp, err := kitexCall(kc, "Echo", &echo.EchoRequest{Message: msg, Payload: payload})
				return resp.GetMessage(), err
			})
		})
	}
	for _, tc := range kitexServerCases {
		t.Run("sluice-to-kitex/"+tc.name, func(t *testing.T) {
			c := newSluiceClient(t, startKitex(t, tc.opts...))
			run(t, func(msg string) (string, error) {
				resp, err := sluiceCall(c, &echopb.EchoRequest{Message: msg, Payload: payload})
				return resp.GetMessage(), err
			})
		})
	}
}

// TestProtoCopyInStep checks echo.proto, the input of kitex_gen, is
// examples/echo/echo.proto with only go_package changed.
func TestProtoCopyInStep(t *testing.T) {
	orig, err := os.ReadFile("../../examples/echo/echo.proto")
	if err != nil {
		t.Fatal(err)
	}
	cp, err := os.ReadFile("echo.proto")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(string(orig),
		`option go_package = "github.com/sluicerpc/sluice/examples/echo/echopb";`,
		`option go_package = "github.com/sluicerpc/sluice/interop/kitex/kitex_gen/echo";`, 1)
	if string(cp) != want {
		t.Fatalf("echo.proto differs from examples/echo/echo.proto beyond go_package; copy it again and run go generate")
	}
}

// tap relays TCP connections to a target and records what the target
// sends back, so a failing test can show the exact reply frames.
type tap struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
	reply bytes.Buffer
}

func startTap(t *testing.T, target string) *tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{ln: ln, target: target}
	tp.wg.Add(1)
	go tp.accept()
	t.Cleanup(func() {
		ln.Close()
		tp.mu.Lock()
		for _, c := range tp.conns {
			c.Close()
		}
		tp.mu.Unlock()
		tp.wg.Wait()
	})
	return tp
}

func (tp *tap) Addr() string { return tp.ln.Addr().String() }

func (tp *tap) accept() {
	defer tp.wg.Done()
	for {
		down, err := tp.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", tp.target, setupTimeout)
		if err != nil {
			down.Close()
			continue
		}
		tp.mu.Lock()
		tp.conns = append(tp.conns, down, up)
		tp.mu.Unlock()
		tp.wg.Add(2)
		go func() {
			defer tp.wg.Done()
			io.Copy(up, down)
			up.Close()
			down.Close()
		}()
		go func() {
			defer tp.wg.Done()
			io.Copy(down, io.TeeReader(up, (*tapRecorder)(tp)))
			up.Close()
			down.Close()
		}()
	}
}

type tapRecorder tap

func (r *tapRecorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reply.Write(b)
}

// Frames returns the recorded replies in hex, one frame a line.
func (tp *tap) Frames() string {
	tp.mu.Lock()
	b := bytes.Clone(tp.reply.Bytes())
	tp.mu.Unlock()
	var sb strings.Builder
	for len(b) >= 4 {
		n := int(binary.BigEndian.Uint32(b)) + 4
		if n > len(b) {
			n = len(b)
		}
		fmt.Fprintf(&sb, "\n\t%s", hex.EncodeToString(b[:n]))
		b = b[n:]
	}
	if len(b) > 0 {
		fmt.Fprintf(&sb, "\n\t%s (partial)", hex.EncodeToString(b))
	}
	return sb.String()
}
