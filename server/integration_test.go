package server_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/internal/transport"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/protocol/ttheader"
	"github.com/sluicerpc/sluice/server"
	"github.com/sluicerpc/sluice/status"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testEcho is an echo implementation the tests steer through the message:
// "panic", "block" (until the context ends or release closes), "sleep:DUR",
// "deadline" (replies with the deadline it saw), "md" (echoes the incoming
// metadata and sets response metadata), "err:CODE".
type testEcho struct {
	release chan struct{}
	started chan string
}

func (e *testEcho) Echo(ctx context.Context, req *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	if e.started != nil {
		e.started <- req.Message
	}
	msg := req.Message
	switch {
	case msg == "panic":
		panic("boom")
	case msg == "block":
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-e.release:
		}
	case strings.HasPrefix(msg, "sleep:"):
		d, _ := time.ParseDuration(msg[len("sleep:"):])
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case msg == "deadline":
		d, ok := ctx.Deadline()
		if !ok {
			return &echopb.EchoResponse{Message: "none"}, nil
		}
		return &echopb.EchoResponse{Message: time.Until(d).Round(100 * time.Millisecond).String()}, nil
	case msg == "md":
		md, _ := metadata.FromIncoming(ctx)
		if err := server.SetResponseMetadata(ctx, metadata.Pairs("x-reply", "r1", "x-reply", "r2")); err != nil {
			return nil, err
		}
		return &echopb.EchoResponse{Message: strings.Join(md.Get("x-tenant"), ",")}, nil
	case strings.HasPrefix(msg, "err:"):
		n, err := strconv.Atoi(msg[4:])
		if err != nil {
			return nil, err
		}
		return nil, status.Errorf(codes.Code(n), "asked for %s", codes.Code(n))
	}
	return &echopb.EchoResponse{Message: msg, Payload: req.Payload, ServedBy: "test"}, nil
}

type fixture struct {
	srv  *server.Server
	addr string
	impl *testEcho
	done chan error
}

func start(t *testing.T, opts ...server.Option) *fixture {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]server.Option{server.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	f := &fixture{srv: server.New(opts...), addr: ln.Addr().String(), impl: &testEcho{release: make(chan struct{})}, done: make(chan error, 1)}
	echopb.RegisterEchoServiceServer(f.srv, f.impl)
	go func() { f.done <- f.srv.Serve(ln) }()
	t.Cleanup(func() {
		f.srv.Stop()
		if err := <-f.done; !errors.Is(err, server.ErrServerStopped) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return f
}

func dial(t *testing.T, addr string, opts ...client.Option) echopb.EchoServiceClient {
	t.Helper()
	c, err := client.New(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return echopb.NewEchoServiceClient(c)
}

func TestEchoRoundTrip(t *testing.T) {
	f := start(t)
	cl := dial(t, f.addr)
	payload := bytes.Repeat([]byte{7}, 100_000) // larger than one read buffer
	resp, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "hi", Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Message != "hi" || !bytes.Equal(resp.Payload, payload) || resp.ServedBy != "test" {
		t.Fatalf("got %q, %d bytes, %q", resp.Message, len(resp.Payload), resp.ServedBy)
	}
}

func TestThousandConcurrentCallsOneConnection(t *testing.T) {
	f := start(t)
	cl := dial(t, f.addr, client.WithConnsPerAddr(1))
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Sprintf("call-%d", i)
			if i%10 == 0 {
				msg = "sleep:" + time.Duration(i%7).String() + "ms" // replies come back out of order
			}
			resp, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: msg, Payload: []byte(msg)})
			if err != nil {
				errs <- err
				return
			}
			if !strings.HasPrefix(msg, "sleep:") && (resp.Message != msg || string(resp.Payload) != msg) {
				errs <- fmt.Errorf("call %d got reply %q", i, resp.Message)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestDeadlineTravelsToServer(t *testing.T) {
	f := start(t)
	cl := dial(t, f.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := cl.Echo(ctx, &echopb.EchoRequest{Message: "deadline"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Message != "3s" {
		t.Fatalf("handler saw a deadline %s away, want 3s", resp.Message)
	}
	resp, err = cl.Echo(context.Background(), &echopb.EchoRequest{Message: "deadline"})
	if err != nil || resp.Message != "none" {
		t.Fatalf("without a deadline the handler saw %q, %v", resp.GetMessage(), err)
	}
}

func TestCallerDeadlineErrorNamesDeadline(t *testing.T) {
	f := start(t)
	cl := dial(t, f.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := cl.Echo(ctx, &echopb.EchoRequest{Message: "block"})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "caller's deadline of 50ms") {
		t.Errorf("error does not say which deadline fired: %v", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, status.ErrDeadlineExceeded) {
		t.Errorf("error does not match context.DeadlineExceeded and status.ErrDeadlineExceeded: %v", err)
	}
}

func TestServerDeadlineErrorNamesDeadline(t *testing.T) {
	// A raw frame with a 30ms RPC timeout: the server's deadline fires and
	// its reply says so, even though this caller has no deadline of its own.
	f := start(t)
	nc, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var h ttheader.Header
	h.SeqID = 9
	h.AddString(ttheader.KeyServiceName, echopb.EchoService_ServiceName)
	h.AddInt(ttheader.KeyRPCTimeout, []byte("30"))
	writeCall(t, nc, &h, "Echo", &echopb.EchoRequest{Message: "block"})
	_, code, msg := readReply(t, nc, nil)
	if code != codes.DeadlineExceeded || !strings.Contains(msg, "timeout of 30ms ran out on the server") {
		t.Fatalf("got %v %q", code, msg)
	}
}

func TestConnectTimeoutErrorNamesConnect(t *testing.T) {
	// A dialer that never completes: the connect timeout fires, well before
	// the caller's own deadline.
	hang := func(ctx context.Context, addr string) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	cl := dial(t, "127.0.0.1:1", client.WithDialer(hang), client.WithConnectTimeout(50*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cl.Echo(ctx, &echopb.EchoRequest{Message: "x"})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "connect timeout of 50ms") {
		t.Fatalf("got %v", err)
	}
	// When the caller's deadline is the shorter one, it is the one named.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	cl = dial(t, "127.0.0.1:1", client.WithDialer(hang), client.WithConnectTimeout(time.Minute))
	_, err = cl.Echo(ctx, &echopb.EchoRequest{Message: "x"})
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "caller's deadline of 20ms") {
		t.Fatalf("got %v", err)
	}
}

func TestCancelFreesCallerAtOnce(t *testing.T) {
	f := start(t)
	f.impl.started = make(chan string, 1)
	cl := dial(t, f.addr)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := cl.Echo(ctx, &echopb.EchoRequest{Message: "block"})
		errc <- err
	}()
	<-f.impl.started
	cancel()
	select {
	case err := <-errc:
		if status.Code(err) != codes.Canceled {
			t.Fatalf("got %v, want Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled call did not return")
	}
	// The connection is still good for the next call.
	f.impl.started = nil
	if _, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "after"}); err != nil {
		t.Fatal(err)
	}
	close(f.impl.release)
}

func TestHandlerPanicBecomesInternal(t *testing.T) {
	f := start(t)
	cl := dial(t, f.addr, client.WithConnsPerAddr(1))
	_, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "panic"})
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("got %v", err)
	}
	if _, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "still serving"}); err != nil {
		t.Fatal(err)
	}
}

func TestErrorCodesCrossTheWire(t *testing.T) {
	f := start(t)
	cl := dial(t, f.addr)
	for c := codes.Canceled; c <= codes.Unauthenticated; c++ {
		_, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "err:" + strconv.Itoa(int(c))})
		st := status.Convert(err)
		if st.Code() != c || st.Message() != "asked for "+c.String() {
			t.Errorf("%v: got %v", c, err)
		}
	}
}

func TestMetadataBothWays(t *testing.T) {
	f := start(t)
	cl := dial(t, f.addr)
	ctx := metadata.AppendToOutgoing(context.Background(), "X-Tenant", "acme", "x-tenant", "beta")
	var md metadata.MD
	resp, err := cl.Echo(ctx, &echopb.EchoRequest{Message: "md"}, client.ResponseMetadata(&md))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Message != "acme,beta" {
		t.Errorf("server saw x-tenant %q", resp.Message)
	}
	if got := md.Get("x-reply"); len(got) != 2 || got[0] != "r1" || got[1] != "r2" {
		t.Errorf("response metadata %v", md)
	}
}

func TestMiddlewaresSeeCallInfo(t *testing.T) {
	var serverSaw, clientSaw atomic.Value
	record := func(v *atomic.Value) endpoint.Middleware {
		return func(next endpoint.Endpoint) endpoint.Endpoint {
			return func(ctx context.Context, req, resp any) error {
				info := callinfo.FromContext(ctx)
				err := next(ctx, req, resp)
				msg := endpoint.Message(resp).(*echopb.EchoResponse)
				v.Store(fmt.Sprintf("%s %s.%s attempt=%d peer=%t md=%v reply=%s", info.Side, info.Service, info.Method, info.Attempt, info.Peer != "", info.Metadata.Get("k"), msg.GetMessage()))
				return err
			}
		}
	}
	f := start(t, server.WithMiddleware(record(&serverSaw)))
	cl := dial(t, f.addr, client.WithMiddleware(record(&clientSaw)))
	ctx := metadata.AppendToOutgoing(context.Background(), "k", "v")
	if _, err := cl.Echo(ctx, &echopb.EchoRequest{Message: "x"}); err != nil {
		t.Fatal(err)
	}
	if got, want := serverSaw.Load(), "server sluice.examples.echo.v1.EchoService.Echo attempt=1 peer=true md=[v] reply=x"; got != want {
		t.Errorf("server middleware saw %q, want %q", got, want)
	}
	if got, want := clientSaw.Load(), "client sluice.examples.echo.v1.EchoService.Echo attempt=1 peer=true md=[] reply=x"; got != want {
		t.Errorf("client middleware saw %q, want %q", got, want)
	}
}

func TestBlockingHandlerDoesNotStallConnection(t *testing.T) {
	f := start(t)
	f.impl.started = make(chan string, 100)
	cl := dial(t, f.addr, client.WithConnsPerAddr(1))
	blocked := make(chan error, 1)
	go func() {
		_, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "block"})
		blocked <- err
	}()
	if m := <-f.impl.started; m != "block" {
		t.Fatalf("first call was %q", m)
	}
	for i := 0; i < 50; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cl.Echo(ctx, &echopb.EchoRequest{Message: "quick"})
		cancel()
		<-f.impl.started
		if err != nil {
			t.Fatalf("call %d behind a blocked handler: %v", i, err)
		}
	}
	close(f.impl.release)
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
}

func TestGracefulStopLosesNoCall(t *testing.T) {
	f := start(t)
	f.impl.started = make(chan string, 100)
	cl := dial(t, f.addr)
	const n = 20
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "sleep:100ms"})
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		<-f.impl.started
	}
	stopped := make(chan error, 1)
	go func() { stopped <- f.srv.GracefulStop(context.Background()) }()
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Errorf("call in flight during GracefulStop: %v", err)
		}
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	// New connections are refused once stopped.
	if _, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "late"}); status.Code(err) != codes.Unavailable {
		t.Errorf("call after GracefulStop: %v, want Unavailable", err)
	}
}

func TestGracefulStopDeadlineStopsHard(t *testing.T) {
	f := start(t)
	f.impl.started = make(chan string, 1)
	cl := dial(t, f.addr)
	errc := make(chan error, 1)
	go func() {
		_, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "block"})
		errc <- err
	}()
	<-f.impl.started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := f.srv.GracefulStop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GracefulStop = %v", err)
	}
	if err := <-errc; status.Code(err) != codes.Unavailable && status.Code(err) != codes.Canceled {
		t.Fatalf("blocked call got %v", err)
	}
}

// writeCall writes one request frame with header h to nc.
func writeCall(t *testing.T, nc net.Conn, h *ttheader.Header, method string, req proto.Message) {
	t.Helper()
	buf, fs, err := ttheader.AppendHeader(nil, h)
	if err != nil {
		t.Fatal(err)
	}
	buf, ps := ttheader.AppendPayloadHeader(buf, ttheader.Call, method, h.SeqID)
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	buf = append(buf, body...)
	ttheader.FinishPayload(buf, ps)
	buf, err = ttheader.FinishFrame(buf, fs, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(buf); err != nil {
		t.Fatal(err)
	}
}

// readReply reads one reply frame; a reply body decodes into resp.
func readReply(t *testing.T, nc net.Conn, resp proto.Message) (seq uint32, code codes.Code, msg string) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	fr := transport.NewFrameReader(nc, 0)
	frame, err := fr.Next()
	if err != nil {
		t.Fatal(err)
	}
	var h ttheader.Header
	pl, err := ttheader.DecodeHeader(frame, &h)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ttheader.DecodePayload(pl)
	if err != nil {
		t.Fatal(err)
	}
	if p.SeqID != h.SeqID {
		t.Errorf("payload seq %d, header seq %d", p.SeqID, h.SeqID)
	}
	switch p.Type {
	case ttheader.Reply:
		if resp != nil {
			if err := proto.Unmarshal(p.Body, resp); err != nil {
				t.Fatal(err)
			}
		}
		return h.SeqID, codes.OK, ""
	case ttheader.Exception:
		typeID, m, err := ttheader.DecodeException(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		code := ttheader.CodeOf(typeID)
		if v := h.String(ttheader.KeyStatus); v != nil {
			fmt.Sscan(string(v), &code)
		}
		return h.SeqID, code, m
	}
	t.Fatalf("reply type %v", p.Type)
	return 0, 0, ""
}

func TestUnknownServiceAndMethodKeepConnection(t *testing.T) {
	f := start(t)
	nc, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cases := []struct {
		service, method string
		want            string
	}{
		{"sluice.nope.v1.Nope", "Echo", "unknown service sluice.nope.v1.Nope"},
		{echopb.EchoService_ServiceName, "Shout", "unknown method Shout"},
		{"", "Shout", "unknown method Shout"},
		{"EchoService", "Echo", ""}, // the short name Kitex sends works
		{"", "Echo", ""},            // no service name: routed by method
	}
	for i, tc := range cases {
		var h ttheader.Header
		h.SeqID = uint32(100 + i)
		if tc.service != "" {
			h.AddString(ttheader.KeyServiceName, tc.service)
		}
		writeCall(t, nc, &h, tc.method, &echopb.EchoRequest{Message: "m"})
		var resp echopb.EchoResponse
		seq, code, msg := readReply(t, nc, &resp)
		if seq != h.SeqID {
			t.Errorf("%d: reply seq %d, want %d", i, seq, h.SeqID)
		}
		if tc.want == "" {
			if code != codes.OK || resp.Message != "m" {
				t.Errorf("%d: got %v %q", i, code, msg)
			}
			continue
		}
		if code != codes.Unimplemented || !strings.Contains(msg, tc.want) {
			t.Errorf("%d: got %v %q, want Unimplemented %q", i, code, msg, tc.want)
		}
	}
}

// otherDesc is a second service that also has a method named Echo.
var otherDesc = server.ServiceDesc{
	ServiceName: "sluice.test.v1.Other",
	Methods: []server.MethodDesc{{
		MethodName: "Echo",
		NewRequest: func() any { return new(wrapperspb.StringValue) },
		Handler: func(_ any, _ context.Context, req any) (any, error) {
			return wrapperspb.String("other:" + req.(*wrapperspb.StringValue).Value), nil
		},
	}},
}

func TestAmbiguousMethodNamesCandidates(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := server.New()
	echopb.RegisterEchoServiceServer(s, &testEcho{})
	s.RegisterService(&otherDesc, struct{}{})
	go s.Serve(ln)
	defer s.Stop()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var h ttheader.Header
	h.SeqID = 1
	writeCall(t, nc, &h, "Echo", &echopb.EchoRequest{Message: "m"})
	_, code, msg := readReply(t, nc, nil)
	if code != codes.Unimplemented || !strings.Contains(msg, "sluice.examples.echo.v1.EchoService, sluice.test.v1.Other") {
		t.Fatalf("got %v %q", code, msg)
	}
	// With the service named, both are reachable.
	c, err := client.New(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out wrapperspb.StringValue
	if err := c.Invoke(context.Background(), "/sluice.test.v1.Other/Echo", wrapperspb.String("x"), &out); err != nil || out.Value != "other:x" {
		t.Fatalf("got %q, %v", out.Value, err)
	}
}

func TestBadFramesCloseOnlyTheirConnection(t *testing.T) {
	f := start(t, server.WithMaxFrameSize(64<<10))
	good := dial(t, f.addr, client.WithConnsPerAddr(1))
	if _, err := good.Echo(context.Background(), &echopb.EchoRequest{Message: "before"}); err != nil {
		t.Fatal(err)
	}
	huge := bytes.Repeat([]byte{1}, 100<<10)
	bad := []struct {
		name  string
		frame []byte
	}{
		{"oversized", func() []byte {
			b := make([]byte, 14)
			b[0], b[1], b[2], b[3] = 0, 0x10, 0, 0 // declares 1 MiB
			b[4], b[5] = 0x10, 0x00
			return b
		}()},
		{"bad magic", mustHex(t, "0000000e1234000000000001000000000000")},
		{"garbage payload", mustHex(t, "0000001210000000000000010001"+"00000000deadbeef")},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", f.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.Write(tc.frame)
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := io.ReadAll(nc); err != nil || len(n) != 0 {
				t.Fatalf("server did not just close the connection: %d bytes, %v", len(n), err)
			}
		})
	}
	// A client sending an oversized request gets an error; the other
	// client's connection is untouched.
	big := dial(t, f.addr, client.WithConnsPerAddr(1))
	if _, err := big.Echo(context.Background(), &echopb.EchoRequest{Payload: huge}); status.Code(err) != codes.Unavailable {
		t.Errorf("oversized request: %v, want Unavailable", err)
	}
	if _, err := good.Echo(context.Background(), &echopb.EchoRequest{Message: "after"}); err != nil {
		t.Fatalf("other connection broken: %v", err)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPeerClosesMidCall(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 10)
		io.ReadFull(nc, buf) // read part of the request, then hang up
		nc.Close()
	}()
	cl := dial(t, ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = cl.Echo(ctx, &echopb.EchoRequest{Message: "x"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v, want Unavailable", err)
	}
	if ctx.Err() != nil {
		t.Fatal("call waited for the deadline instead of failing when the peer closed")
	}
}

// protocolRecorder is a middleware that records the protocol of the call.
func protocolRecorder(saw *string) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			*saw = callinfo.FromContext(ctx).Protocol
			return next(ctx, req, resp)
		}
	}
}
