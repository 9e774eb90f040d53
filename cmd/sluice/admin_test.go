package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/config/configtest"
	"github.com/sluicerpc/sluice/controlplane"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/discovery/etcd"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/server"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestControlPlaneCLI runs a control plane, an echo server registered in
// its etcd, and the get / apply / call commands against them.
func TestControlPlaneCLI(t *testing.T) {
	configtest.Register()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := controlplane.Start(ctx, controlplane.Config{
		DataDir: t.TempDir(), EtcdListen: freeAddr(t), PeerListen: freeAddr(t), Listen: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	endpoints := strings.Join(p.EtcdEndpoints(), ",")

	reg, err := etcd.NewRegistry(etcd.Config{Endpoints: p.EtcdEndpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := server.New(server.WithLogger(slog.New(slog.DiscardHandler)),
		server.WithRegistry(reg, discovery.Instance{Service: "echo", Labels: map[string]string{"lane": "blue"}}),
		server.WithDeregisterGrace(0))
	echopb.RegisterEchoServiceServer(s, mdEcho{})
	go s.Serve(ln)
	defer s.Stop()

	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := runCmd(args, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	// The registration shows up.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, _ := run("get", "services", "--server", p.Addr())
		if code == 0 && strings.Contains(out, "echo") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo never registered: %d %q", code, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, out, errOut := run("get", "instances", "echo", "--server", p.Addr()); code != 0 || !strings.Contains(out, ln.Addr().String()) || !strings.Contains(out, "lane=blue") {
		t.Fatalf("get instances: %d %q %q", code, out, errOut)
	}

	// sluice call through etcd, on every protocol.
	for _, proto := range []string{"native", "grpc", "connect"} {
		code, out, errOut := run("call", "etcd:///echo", "sluice.examples.echo.v1.EchoService/Echo", `{"message":"via etcd"}`, "--etcd", endpoints, "--protocol", proto)
		if code != 0 || !strings.Contains(out, `"via etcd"`) {
			t.Fatalf("call etcd:///echo over %s: %d %q %q", proto, code, out, errOut)
		}
	}

	// apply: a good file, then a bad one that names its fields and changes nothing.
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("apiVersion: sluice/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 2}\n"), 0o600)
	if code, out, errOut := run("apply", "-f", good, "--server", p.Addr()); code != 0 || !strings.Contains(out, "Widget/w applied") {
		t.Fatalf("apply: %d %q %q", code, out, errOut)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: sluice/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: -5}\n"), 0o600)
	if code, _, errOut := run("apply", "-f", bad, "--server", p.Addr()); code != 1 || !strings.Contains(errOut, "spec.size: must not be negative") || !strings.Contains(errOut, "HTTP 400") {
		t.Fatalf("bad apply: %d %q", code, errOut)
	}
	if code, out, _ := run("get", "rules", "--server", p.Addr(), "-o", "json"); code != 0 || !strings.Contains(out, `"size": 2`) {
		t.Fatalf("rules after a rejected apply: %d %q", code, out)
	}
	if code, _, errOut := run("get", "rules", "--server", "127.0.0.1:1"); code != 1 || !strings.Contains(errOut, "unreachable") {
		t.Fatalf("unreachable control plane: %d %q", code, errOut)
	}
	if code, _, _ := run("get", "bogus"); code != 2 {
		t.Fatalf("bad get: %d", code)
	}
}
