package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/internal/grpctest/echogrpc"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/server"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
	grpcmd "google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"
)

const echoPath = "/sluice.examples.echo.v1.EchoService/Echo"

// caller is one way to make an echo call against a Sluice port; it
// returns the reply message and the code of the outcome.
type caller struct {
	name string
	call func(ctx context.Context, msg string, md map[string]string) (string, codes.Code, error)
}

// callers returns every client the port must serve: Sluice's own client on
// each protocol, stock grpc-go, stock connect-go, and plain HTTP JSON.
func callers(t *testing.T, addr string) []caller {
	t.Helper()
	var cs []caller
	for _, p := range []client.Protocol{client.Native, client.GRPC, client.Connect} {
		cl := dial(t, addr, client.WithProtocol(p))
		cs = append(cs, caller{"sluice-" + p.String(), func(ctx context.Context, msg string, md map[string]string) (string, codes.Code, error) {
			for k, v := range md {
				ctx = metadata.AppendToOutgoing(ctx, k, v)
			}
			resp, err := cl.Echo(ctx, &echopb.EchoRequest{Message: msg})
			return resp.GetMessage(), status.Code(err), err
		}})
	}
	g := echogrpc.NewEchoServiceClient(dialGRPC(t, addr))
	cs = append(cs, caller{"grpc-go", func(ctx context.Context, msg string, md map[string]string) (string, codes.Code, error) {
		for k, v := range md {
			ctx = grpcmd.AppendToOutgoingContext(ctx, k, v)
		}
		resp, err := g.Echo(ctx, &echopb.EchoRequest{Message: msg})
		return resp.GetMessage(), grpcstatus.Code(err), err
	}})
	cc := connect.NewClient[echopb.EchoRequest, echopb.EchoResponse](http.DefaultClient, "http://"+addr+echoPath)
	cs = append(cs, caller{"connect-go", func(ctx context.Context, msg string, md map[string]string) (string, codes.Code, error) {
		req := connect.NewRequest(&echopb.EchoRequest{Message: msg})
		for k, v := range md {
			req.Header().Set(k, v)
		}
		resp, err := cc.CallUnary(ctx, req)
		if err != nil {
			c, _ := status.CodeFromConnectName(connect.CodeOf(err).String())
			return "", c, err
		}
		return resp.Msg.GetMessage(), codes.OK, nil
	}})
	cs = append(cs, caller{"http-json", func(ctx context.Context, msg string, md map[string]string) (string, codes.Code, error) {
		body, _ := json.Marshal(map[string]string{"message": msg})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+echoPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range md {
			req.Header.Set(k, v)
		}
		if d, ok := ctx.Deadline(); ok {
			req.Header.Set("Connect-Timeout-Ms", strconv.Itoa(int(time.Until(d).Milliseconds())))
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return "", codes.DeadlineExceeded, err
			}
			return "", codes.Unavailable, err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			var e struct{ Code, Message string }
			json.Unmarshal(b, &e)
			c, _ := status.CodeFromConnectName(e.Code)
			if status.HTTPStatus(c) != res.StatusCode {
				return "", codes.Unknown, fmt.Errorf("code %s came with HTTP %d", e.Code, res.StatusCode)
			}
			return "", c, fmt.Errorf("%s: %s", e.Code, e.Message)
		}
		var out struct{ Message string }
		err = json.Unmarshal(b, &out)
		return out.Message, codes.OK, err
	}})
	return cs
}

// TestCodesAcrossProtocols: the same failure gives the same code on every protocol.
func TestCodesAcrossProtocols(t *testing.T) {
	f := start(t)
	for _, c := range callers(t, f.addr) {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for code := codes.OK; code <= codes.Unauthenticated; code++ {
				msg := "err:" + strconv.Itoa(int(code))
				if code == codes.OK {
					msg = "fine"
				}
				_, got, err := c.call(ctx, msg, nil)
				if got != code {
					t.Errorf("%v: got %v (%v)", code, got, err)
				}
			}
			// Unknown method: Unimplemented everywhere.
			if c.name == "sluice-native" {
				cl, _ := client.New(f.addr)
				defer cl.Close()
				err := cl.Invoke(ctx, "/sluice.examples.echo.v1.EchoService/Nope", &echopb.EchoRequest{}, &echopb.EchoResponse{})
				if status.Code(err) != codes.Unimplemented {
					t.Errorf("unknown method: %v", err)
				}
			}
			// Panics: Internal. Server-side deadline: DeadlineExceeded.
			if _, got, err := c.call(ctx, "panic", nil); got != codes.Internal {
				t.Errorf("panic: %v %v", got, err)
			}
			dctx, dcancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer dcancel()
			if _, got, err := c.call(dctx, "block", nil); got != codes.DeadlineExceeded {
				t.Errorf("deadline: %v %v", got, err)
			}
		})
	}
}

// TestOneChainForAllProtocols: a middleware sees the same call info
// whichever protocol carried the call.
func TestOneChainForAllProtocols(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{}
	record := func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			info := callinfo.FromContext(ctx)
			_, hasDeadline := ctx.Deadline()
			mu.Lock()
			seen[info.Protocol+"/"+info.Metadata.Value("x-caller")] = fmt.Sprintf("%s %s.%s tenant=%s deadline=%t peer=%t attempt=%d",
				info.Side, info.Service, info.Method, info.Metadata.Value("x-tenant"), hasDeadline && !info.Deadline.IsZero(), info.Peer != "", info.Attempt)
			mu.Unlock()
			return next(ctx, req, resp)
		}
	}
	f := start(t, server.WithMiddleware(record))
	for _, c := range callers(t, f.addr) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, code, err := c.call(ctx, "x", map[string]string{"x-tenant": "acme", "x-caller": c.name}); code != codes.OK {
			t.Errorf("%s: %v", c.name, err)
		}
		cancel()
	}
	want := "server sluice.examples.echo.v1.EchoService.Echo tenant=acme deadline=true peer=true attempt=1"
	if len(seen) != 6 {
		t.Errorf("saw %d calls: %v", len(seen), seen)
	}
	for k, v := range seen {
		if v != want {
			t.Errorf("%s: middleware saw %q, want %q", k, v, want)
		}
	}
}

// TestMixedLoadOnePort runs every protocol against one port at once.
func TestMixedLoadOnePort(t *testing.T) {
	f := start(t)
	cs := callers(t, f.addr)
	const perCaller, workers = 200, 4
	var wg sync.WaitGroup
	errs := make(chan error, len(cs)*workers)
	for _, c := range cs {
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perCaller; i++ {
					msg := fmt.Sprintf("%s-%d-%d", c.name, w, i)
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					got, code, err := c.call(ctx, msg, nil)
					cancel()
					if code != codes.OK || got != msg {
						errs <- fmt.Errorf("%s: got %q, %v", c.name, got, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestConnectWithCurlShape(t *testing.T) {
	// What the README shows with curl.
	f := start(t)
	res, err := http.Post("http://"+f.addr+echoPath, "application/json", strings.NewReader(`{"message":"hello"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.Contains(string(b), `"message":"hello"`) || !strings.Contains(string(b), `"servedBy":"test"`) {
		t.Fatalf("%d %s", res.StatusCode, b)
	}
	res, err = http.Post("http://"+f.addr+"/sluice.examples.echo.v1.EchoService/Nope", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 404 || !strings.Contains(string(b), `"code":"unimplemented"`) {
		t.Fatalf("unknown method: %d %s", res.StatusCode, b)
	}
}
