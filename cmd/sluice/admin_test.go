package main

import (
	"bytes"
	"context"
	"fmt"
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
	// Route rules: applied, shown with their versions, a changed one with
	// a higher version; a bad one names its field and changes nothing.
	rules := filepath.Join(dir, "rules.yaml")
	routeDoc := func(weight int) string {
		return fmt.Sprintf(`apiVersion: sluice/v1
kind: RouteRule
metadata: {name: echo}
spec:
  service: sluice.examples.echo.v1.EchoService
  routes:
  - name: split
    destinations: [{subset: {version: v1}, weight: %d}, {subset: {version: v2}, weight: %d}]
---
apiVersion: sluice/v1
kind: Lane
metadata: {name: blue}
spec:
  ingress: {headers: [{key: x-lane, exact: blue}]}
`, 100-weight, weight)
	}
	versions := func() map[string]string {
		code, out, errOut := run("get", "rules", "--server", p.Addr())
		if code != 0 {
			t.Fatalf("get rules: %d %q", code, errOut)
		}
		v := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			if f := strings.Fields(l); len(f) == 3 {
				v[f[0]+"/"+f[1]] = f[2]
			}
		}
		return v
	}
	os.WriteFile(rules, []byte(routeDoc(10)), 0o600)
	if code, out, errOut := run("apply", "-f", rules, "--server", p.Addr()); code != 0 || !strings.Contains(out, "RouteRule/echo applied") || !strings.Contains(out, "Lane/blue applied") {
		t.Fatalf("apply rules: %d %q %q", code, out, errOut)
	}
	v1 := versions()
	if v1["RouteRule/echo"] == "" || v1["Lane/blue"] == "" {
		t.Fatalf("get rules shows %v, want RouteRule/echo and Lane/blue", v1)
	}
	os.WriteFile(rules, []byte(routeDoc(50)), 0o600)
	if code, _, errOut := run("apply", "-f", rules, "--server", p.Addr()); code != 0 {
		t.Fatalf("re-apply rules: %d %q", code, errOut)
	}
	if v2 := versions(); v2["RouteRule/echo"] == v1["RouteRule/echo"] {
		t.Errorf("a changed RouteRule kept version %s", v2["RouteRule/echo"])
	}
	os.WriteFile(rules, []byte(strings.Replace(routeDoc(50), "weight: 50}, {", "weight: -1}, {", 1)), 0o600)
	if code, _, errOut := run("apply", "-f", rules, "--server", p.Addr()); code != 1 || !strings.Contains(errOut, "spec.routes[0].destinations[0].weight") {
		t.Fatalf("bad RouteRule: %d %q", code, errOut)
	}
	if code, out, _ := run("get", "rules", "--server", p.Addr(), "-o", "json"); code != 0 || !strings.Contains(out, `"weight": 50`) {
		t.Fatalf("rules after a rejected RouteRule: %d %q", code, out)
	}
	if code, _, errOut := run("get", "rules", "--server", "127.0.0.1:1"); code != 1 || !strings.Contains(errOut, "unreachable") {
		t.Fatalf("unreachable control plane: %d %q", code, errOut)
	}
	if code, _, _ := run("get", "bogus"); code != 2 {
		t.Fatalf("bad get: %d", code)
	}
}
