package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/breaker"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/observe/metrics"
	"github.com/sluicerpc/sluice/server"
	"github.com/sluicerpc/sluice/status"
)

// TestPromtool lints the /metrics output of a server's port, with every
// Sluice metric family present, with `promtool check metrics`.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not on PATH (Debian package prometheus ships it; .ci/run installs it)")
	}
	m := newMetrics(t, metrics.Config{})
	addr, _ := startServer(t, server.WithMetrics(m))
	echo := dial(t, addr, client.WithMiddleware(m.Client()))
	for _, msg := range []string{"hi", "err:5"} {
		echo.Echo(context.Background(), &echopb.EchoRequest{Message: msg})
	}
	m.BreakerStateChange("echo", breaker.Closed, breaker.Open)
	m.Rejected("server", echoService, echoMethod, "rate_limit")
	m.Retry(echoService, echoMethod)
	m.Hedge(echoService, echoMethod)
	m.Fallback(echoService, echoMethod)
	m.Ejection(addr)

	body := scrape(t, "http://"+addr+"/metrics")
	for _, name := range []string{
		"sluice_server_requests_total", "sluice_server_handling_seconds_bucket", "sluice_server_in_flight_requests",
		"sluice_server_received_bytes_total", "sluice_server_sent_bytes_total",
		"sluice_client_requests_total", "sluice_client_request_seconds_bucket", "sluice_client_in_flight_requests",
		"sluice_client_sent_bytes_total", "sluice_client_received_bytes_total",
		"sluice_breaker_state", "sluice_breaker_transitions_total", "sluice_rejected_requests_total",
		"sluice_client_retries_total", "sluice_client_hedges_total", "sluice_client_fallbacks_total",
		"sluice_client_ejections_total", "go_goroutines", "process_cpu_seconds_total",
	} {
		if !bytes.Contains([]byte(body), []byte("\n"+name+"{")) && !bytes.Contains([]byte(body), []byte("\n"+name+" ")) {
			t.Errorf("/metrics has no %s", name)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader([]byte(body))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	t.Logf("promtool check metrics: ok %s", out)
}

// TestPrometheusScrapes starts a real Prometheus server that scrapes an
// echo server's port every second, and reads the counts back through
// Prometheus's HTTP API.
func TestPrometheusScrapes(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not on PATH (Debian package prometheus; .ci/run installs it)")
	}
	m := newMetrics(t, metrics.Config{})
	addr, _ := startServer(t, server.WithMetrics(m))
	echo := dial(t, addr)
	const ok, failed = 7, 2
	for range ok {
		if _, err := echo.Echo(context.Background(), &echopb.EchoRequest{Message: "hi"}); err != nil {
			t.Fatal(err)
		}
	}
	for range failed {
		if _, err := echo.Echo(context.Background(), &echopb.EchoRequest{Message: "err:14"}); status.Code(err) != codes.Unavailable {
			t.Fatalf("err:14 gave %v", err)
		}
	}

	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sluice
    scrape_interval: 1s
    scrape_timeout: 1s
    metrics_path: /metrics
    static_configs:
      - targets: ['%s']
`, addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	web := freeAddr(t)
	cmd := exec.Command(bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+web,
		"--log.level=warn",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})

	query := func(q string) (float64, bool) {
		return promQuery(t, web, q)
	}
	sel := fmt.Sprintf(`{job="sluice",service=%q,method=%q`, echoService, echoMethod)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if v, found := query(`sluice_server_requests_total` + sel + `,code="OK"}`); found {
			if v != ok {
				t.Fatalf("Prometheus read %v OK calls, want %d", v, ok)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Prometheus scraped nothing within 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for q, want := range map[string]float64{
		`sluice_server_requests_total` + sel + `,code="UNAVAILABLE"}`: failed,
		`sluice_server_handling_seconds_count` + sel + `}`:            ok + failed,
		`sum(sluice_server_requests_total` + sel + `})`:               ok + failed,
		`up{job="sluice"}`: 1,
	} {
		if v, found := query(q); !found || v != want {
			t.Errorf("%s = %v (found %v), want %v", q, v, found, want)
		}
	}
}

// promQuery runs an instant query against the Prometheus at addr; found
// is false while the result is empty or Prometheus is not up yet.
func promQuery(t *testing.T, addr, q string) (v float64, found bool) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, false // not listening yet
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, false // starting up
	}
	if r.Status != "success" {
		if resp.StatusCode == http.StatusBadRequest {
			t.Fatalf("query %s: %s", q, r.Error)
		}
		return 0, false
	}
	if len(r.Data.Result) != 1 {
		return 0, false
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err = strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("query %s: value %q: %v", q, s, err)
	}
	return v, true
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
