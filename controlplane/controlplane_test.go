package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/config/configtest"
	"github.com/sluicerpc/sluice/controlplane"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/discovery/etcd"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) {
	configtest.Register() // a kind to apply; real kinds come with their packages
	goleak.VerifyTestMain(m,
		// A multi-member embedded etcd leaves the keep-alive HTTP
		// connections between its members (rafthttp over cmux) behind
		// after Close. These tests make no keep-alive connections of
		// their own (see web), so these can only be etcd's.
		goleak.IgnoreAnyFunction("github.com/soheilhy/cmux.(*MuxConn).Read"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*connReader).startBackgroundRead"),
		goleak.IgnoreAnyFunction("net/http.(*connReader).abortPendingRead"),
	)
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startPlane(t *testing.T, cfg controlplane.Config) *controlplane.Plane {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.EtcdListen == "" {
		cfg.EtcdListen = freeAddr(t)
	}
	if cfg.PeerListen == "" {
		cfg.PeerListen = freeAddr(t)
	}
	cfg.Listen = "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := controlplane.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// web is the tests' HTTP client; no keep-alive connections outlive a test.
var web = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	res, err := web.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return res.StatusCode
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	res, err := web.Post(url, "application/yaml", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestAdminAPI(t *testing.T) {
	p := startPlane(t, controlplane.Config{})
	base := "http://" + p.Addr()

	reg, err := etcd.NewRegistry(etcd.Config{Endpoints: p.EtcdEndpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	ctx := context.Background()
	for _, in := range []discovery.Instance{
		{Service: "echo", Addr: "127.0.0.1:9001", Labels: map[string]string{"version": "v1"}},
		{Service: "echo", Addr: "127.0.0.1:9002", Weight: 50, Labels: map[string]string{"version": "v2", "lane": "blue"}},
		{Service: "orders", Addr: "127.0.0.1:9100"},
	} {
		if err := reg.Register(ctx, in); err != nil {
			t.Fatal(err)
		}
	}

	var services []controlplane.Service
	if code := getJSON(t, base+"/api/v1/services", &services); code != 200 || fmt.Sprint(services) != "[{echo 2} {orders 1}]" {
		t.Fatalf("services: %d %v", code, services)
	}
	var ins []discovery.Instance
	if code := getJSON(t, base+"/api/v1/services/echo/instances", &ins); code != 200 || len(ins) != 2 || ins[1].Labels["lane"] != "blue" || ins[1].Weight != 50 {
		t.Fatalf("instances: %d %+v", code, ins)
	}
	var apiErr controlplane.APIError
	if code := getJSON(t, base+"/api/v1/services/nope/instances", &apiErr); code != 404 {
		t.Fatalf("unknown service: %d %+v", code, apiErr)
	}

	good := `apiVersion: sluice/v1
kind: Widget
metadata: {name: a}
spec: {size: 3, color: red}
---
apiVersion: sluice/v1
kind: Widget
metadata: {name: b}
spec: {size: 4}
`
	if code, body := post(t, base+"/api/v1/rules", good); code != 200 || !strings.Contains(body, `"name": "b"`) {
		t.Fatalf("apply: %d %s", code, body)
	}
	// A batch with a bad document: 400 naming every bad field; nothing applied.
	bad := `apiVersion: sluice/v1
kind: Widget
metadata: {name: c}
spec: {size: 1}
---
apiVersion: sluice/v1
kind: Widget
metadata: {name: a}
spec: {size: -1, parts: [{weight: 500}], bogus: 1}
`
	code, body := post(t, base+"/api/v1/rules", bad)
	if code != 400 {
		t.Fatalf("bad batch: %d %s", code, body)
	}
	if err := json.Unmarshal([]byte(body), &apiErr); err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	for _, f := range apiErr.Fields {
		paths[f.Path] = true
	}
	if !paths["spec.bogus"] && !(paths["spec.size"] && paths["spec.parts[0].weight"]) {
		t.Errorf("field paths %v", apiErr.Fields)
	}
	var rules []controlplane.Rule
	getJSON(t, base+"/api/v1/rules", &rules)
	var spec struct{ Size int }
	if len(rules) != 2 || json.Unmarshal(rules[0].Spec, &spec) != nil || spec.Size != 3 {
		t.Fatalf("rules after a rejected batch: %+v", rules)
	}
	// Wrong apiVersion and unknown kind are named too.
	code, body = post(t, base+"/api/v1/rules", "apiVersion: v2\nkind: Nope\nmetadata: {name: x}\nspec: {}\n")
	if code != 400 || !strings.Contains(body, `"path": "apiVersion"`) {
		t.Fatalf("bad envelope: %d %s", code, body)
	}
	// The governance kinds are known: a TrafficPolicy applies, and a bad one
	// is refused with its field.
	code, body = post(t, base+"/api/v1/rules", "apiVersion: sluice/v1\nkind: TrafficPolicy\nmetadata: {name: echo}\nspec: {service: pkg.Echo, timeout: 1s, retries: {maxAttempts: 2}}\n")
	if code != 200 {
		t.Fatalf("TrafficPolicy: %d %s", code, body)
	}
	code, body = post(t, base+"/api/v1/rules", "apiVersion: sluice/v1\nkind: TrafficPolicy\nmetadata: {name: echo}\nspec: {service: pkg.Echo, retries: {jitter: 3}}\n")
	if code != 400 || !strings.Contains(body, `"path": "spec.retries.jitter"`) {
		t.Fatalf("bad TrafficPolicy: %d %s", code, body)
	}
	// Optimistic concurrency: an expected version that is not current.
	code, body = post(t, base+"/api/v1/rules", "apiVersion: sluice/v1\nkind: Widget\nmetadata: {name: a, version: 1}\nspec: {size: 9}\n")
	if code != 409 {
		t.Fatalf("stale version: %d %s", code, body)
	}
}

func TestThreeNodeCluster(t *testing.T) {
	names := []string{"n1", "n2", "n3"}
	peers := make([]string, 3)
	var members []string
	for i, n := range names {
		peers[i] = freeAddr(t)
		members = append(members, n+"="+peers[i])
	}
	planes := make([]*controlplane.Plane, 3)
	errs := make(chan error, 3)
	for i, n := range names {
		go func() {
			defer func() { errs <- nil }()
			planes[i] = startPlane(t, controlplane.Config{Name: n, PeerListen: peers[i], Peers: strings.Join(members, ",")})
		}()
	}
	for range names {
		<-errs
	}
	var endpoints []string
	for _, p := range planes {
		if p == nil {
			t.FailNow()
		}
		endpoints = append(endpoints, p.EtcdEndpoints()...)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	status, err := cli.MemberList(ctx)
	if err != nil || len(status.Members) != 3 {
		t.Fatalf("members: %v %v", status, err)
	}
	// Apply through one node's API, read through another's.
	if code, body := post(t, "http://"+planes[0].Addr()+"/api/v1/rules", "apiVersion: sluice/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1}\n"); code != 200 {
		t.Fatalf("apply: %d %s", code, body)
	}
	var rules []controlplane.Rule
	getJSON(t, "http://"+planes[2].Addr()+"/api/v1/rules", &rules)
	if len(rules) != 1 {
		t.Fatalf("read through another node: %+v", rules)
	}
	// Losing one node keeps the cluster writable.
	planes[2].Close()
	if code, body := post(t, "http://"+planes[1].Addr()+"/api/v1/rules", "apiVersion: sluice/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 2}\n"); code != 200 {
		t.Fatalf("apply with a node down: %d %s", code, body)
	}
	getJSON(t, "http://"+planes[0].Addr()+"/api/v1/rules", &rules)
	if len(rules) != 2 {
		t.Fatalf("after losing a node: %+v", rules)
	}
}

func TestExternalCluster(t *testing.T) {
	embedded := startPlane(t, controlplane.Config{})
	// A second control plane that embeds nothing and uses the first's etcd.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	external, err := controlplane.Start(ctx, controlplane.Config{EtcdEndpoints: embedded.EtcdEndpoints(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer external.Close()
	if external.Err() != nil {
		t.Error("an external-cluster plane reports an embedded etcd")
	}
	if code, body := post(t, "http://"+external.Addr()+"/api/v1/rules", "apiVersion: sluice/v1\nkind: Widget\nmetadata: {name: ext}\nspec: {size: 1}\n"); code != 200 {
		t.Fatalf("apply through the external plane: %d %s", code, body)
	}
	var rules []controlplane.Rule
	getJSON(t, "http://"+embedded.Addr()+"/api/v1/rules", &rules)
	if len(rules) != 1 || rules[0].Metadata.Name != "ext" {
		t.Fatalf("rules seen by the embedded plane: %+v", rules)
	}
}
