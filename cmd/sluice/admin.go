package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sluicerpc/sluice/controlplane"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/discovery/etcd"
)

// serve runs `sluice serve` until SIGINT or SIGTERM.
func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg controlplane.Config
	fs.StringVar(&cfg.DataDir, "data-dir", "./sluice-data", "embedded etcd data directory")
	fs.StringVar(&cfg.EtcdListen, "etcd-listen", "127.0.0.1:2379", "embedded etcd client address")
	fs.StringVar(&cfg.PeerListen, "peer-listen", "127.0.0.1:2380", "embedded etcd peer address")
	fs.StringVar(&cfg.Name, "name", "sluice", "this member's name in the etcd cluster")
	fs.StringVar(&cfg.Peers, "peers", "", "every member of a new cluster: name=host:port,name2=host:port (peer addresses)")
	endpoints := fs.String("etcd-endpoints", "", "use this external etcd cluster (a,b,c) instead of an embedded one")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:7070", "admin HTTP address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *endpoints != "" {
		cfg.EtcdEndpoints = etcd.Endpoints(*endpoints)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	p, err := controlplane.Start(startCtx, cfg)
	cancel()
	if err != nil {
		fmt.Fprintln(stderr, "sluice serve:", err)
		return 1
	}
	fmt.Fprintf(stdout, "sluice serve: admin API on http://%s, etcd on %s\n", p.Addr(), strings.Join(p.EtcdEndpoints(), ","))
	select {
	case <-ctx.Done():
	case err := <-p.Err():
		fmt.Fprintln(stderr, "sluice serve: etcd:", err)
	}
	if err := p.Close(); err != nil {
		fmt.Fprintln(stderr, "sluice serve:", err)
		return 1
	}
	return 0
}

// adminURL is the control plane to talk to: --server, $SLUICE_SERVER, or
// the default admin address.
func adminURL(flagValue string) string {
	s := flagValue
	if s == "" {
		s = os.Getenv("SLUICE_SERVER")
	}
	if s == "" {
		s = "127.0.0.1:7070"
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return strings.TrimRight(s, "/")
}

// get runs `sluice get services | instances NAME | rules`.
func get(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "control plane admin address (default $SLUICE_SERVER or 127.0.0.1:7070)")
	output := fs.String("o", "table", "output: table or json")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	base := adminURL(*server)
	var path string
	switch {
	case len(pos) == 1 && pos[0] == "services":
		path = "/api/v1/services"
	case len(pos) == 2 && pos[0] == "instances":
		path = "/api/v1/services/" + url.PathEscape(pos[1]) + "/instances"
	case len(pos) == 1 && pos[0] == "rules":
		path = "/api/v1/rules"
	default:
		fmt.Fprintln(stderr, "usage: sluice get services | instances NAME | rules [-o json] [--server ADDR]")
		return 2
	}
	body, code := adminDo(http.MethodGet, base+path, nil, stderr)
	if code != 0 {
		return code
	}
	if *output == "json" {
		stdout.Write(body)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch pos[0] {
	case "services":
		var ss []controlplane.Service
		json.Unmarshal(body, &ss)
		fmt.Fprintln(tw, "NAME\tINSTANCES")
		for _, s := range ss {
			fmt.Fprintf(tw, "%s\t%d\n", s.Name, s.Instances)
		}
	case "instances":
		var ins []discovery.Instance
		json.Unmarshal(body, &ins)
		fmt.Fprintln(tw, "ADDR\tWEIGHT\tLABELS")
		for _, in := range ins {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", in.Addr, in.EffectiveWeight(), labels(in.Labels))
		}
	case "rules":
		var rs []controlplane.Rule
		json.Unmarshal(body, &rs)
		fmt.Fprintln(tw, "KIND\tNAME\tVERSION")
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", r.Kind, r.Metadata.Name, r.Metadata.Version)
		}
	}
	return 0
}

func labels(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	if len(parts) == 0 {
		return "-"
	}
	sortStrings(parts)
	return strings.Join(parts, ",")
}

// apply runs `sluice apply -f FILE` (- for stdin).
func apply(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("apply", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "control plane admin address (default $SLUICE_SERVER or 127.0.0.1:7070)")
	file := fs.String("f", "", "YAML or JSON file of rule documents (- for stdin)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if *file == "" || len(pos) > 0 {
		fmt.Fprintln(stderr, "usage: sluice apply -f FILE [--server ADDR]")
		return 2
	}
	var data []byte
	if *file == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(*file)
	}
	if err != nil {
		fmt.Fprintln(stderr, "sluice apply:", err)
		return 2
	}
	body, code := adminDo(http.MethodPost, adminURL(*server)+"/api/v1/rules", data, stderr)
	if code != 0 {
		return code
	}
	var rs []controlplane.Rule
	json.Unmarshal(body, &rs)
	for _, r := range rs {
		fmt.Fprintf(stdout, "%s/%s applied (version %d)\n", r.Kind, r.Metadata.Name, r.Metadata.Version)
	}
	return 0
}

// adminDo calls the admin API; on an error answer it prints the error and
// every rejected field and returns exit code 1.
func adminDo(method, target string, body []byte, stderr io.Writer) ([]byte, int) {
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return nil, 2
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/yaml")
	}
	c := &http.Client{Timeout: 30 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "sluice: control plane unreachable:", err)
		return nil, 1
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return nil, 1
	}
	if res.StatusCode/100 != 2 {
		var e controlplane.APIError
		if json.Unmarshal(out, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(out))
		}
		fmt.Fprintf(stderr, "sluice: %s (HTTP %d)\n", e.Error, res.StatusCode)
		for _, f := range e.Fields {
			fmt.Fprintf(stderr, "  %s: %s: %s\n", f.Document, f.Path, f.Reason)
		}
		return nil, 1
	}
	return out, 0
}

func sortStrings(s []string) { sort.Strings(s) }
