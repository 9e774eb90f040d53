package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAccessLogFlag: --access-log logs one JSON line per call with the
// trace and call fields; without it nothing is added to the server.
func TestAccessLogFlag(t *testing.T) {
	defer slog.SetDefault(slog.Default())
	if opts, shutdown, err := observability(flags{}, nil); err != nil || len(opts) != 0 {
		t.Fatalf("no flags: %d options, err %v; want none", len(opts), err)
	} else {
		shutdown()
	}

	var out lockedBuffer
	opts, shutdown, err := observability(flags{accessLog: true}, &out)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := server.New(opts...)
	echopb.RegisterEchoServiceServer(s, &echo.Service{})
	go s.Serve(ln)
	defer s.Stop()
	c, err := client.New(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 2 {
		if _, err := echopb.NewEchoServiceClient(c).Echo(context.Background(), &echopb.EchoRequest{Message: "hi"}); err != nil {
			t.Fatal(err)
		}
	}

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one per call:\n%s", len(lines), out.String())
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		for _, k := range []string{"trace_id", "span_id", "service", "method", "code", "duration", "peer", "protocol"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %s has no %s", l, k)
			}
		}
		if m["method"] != "Echo" || m["code"] != "OK" {
			t.Errorf("line %s: method %v code %v", l, m["method"], m["code"])
		}
	}
}

func TestOTLPFlag(t *testing.T) {
	if _, _, err := observability(flags{otlp: "ftp://x"}, nil); err == nil || !strings.HasPrefix(err.Error(), "--otlp") {
		t.Errorf("bad --otlp: err %v", err)
	}
	opts, shutdown, err := observability(flags{otlp: "http://127.0.0.1:4317"}, nil)
	if err != nil || len(opts) == 0 {
		t.Fatalf("--otlp: %d options, err %v", len(opts), err)
	}
	shutdown() // nothing to export: returns at once
}
