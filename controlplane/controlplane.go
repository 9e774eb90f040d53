// Package controlplane is `sluice serve`: etcd (embedded, or an external
// cluster), and an admin HTTP API over the service registry and the
// governance rule documents.
//
//	p, err := controlplane.Start(ctx, controlplane.Config{DataDir: "./sluice-data"})
//	if err != nil { ... }
//	defer p.Close()
//	fmt.Println("admin API on", p.Addr(), "etcd on", p.EtcdEndpoints())
//
// The admin API (JSON):
//
//	GET  /api/v1/services                  services and their instance counts
//	GET  /api/v1/services/{name}/instances the instances of one service
//	GET  /api/v1/rules                     every rule document
//	POST /api/v1/rules                     apply YAML or JSON documents, all or none
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sluicerpc/sluice/config/etcdstore"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Config configures a control plane. The zero value runs a one-node
// embedded etcd in ./sluice-data with everything on loopback.
type Config struct {
	// DataDir holds the embedded etcd's data. Default "./sluice-data".
	DataDir string
	// Name is this member's name in the etcd cluster. Default "sluice".
	Name string
	// EtcdListen is the address the embedded etcd serves clients on.
	// Default "127.0.0.1:2379".
	EtcdListen string
	// PeerListen is the address the embedded etcd talks to its peers on.
	// Default "127.0.0.1:2380".
	PeerListen string
	// Peers lists every member of a new cluster, this one included, as
	// "name=host:port,name2=host:port" (peer addresses). Default: this
	// member alone. Three processes given the same Peers (and their own
	// Name and PeerListen) form a three-node cluster.
	Peers string
	// EtcdEndpoints, when set, are an external etcd cluster to use instead
	// of an embedded one; DataDir, EtcdListen, PeerListen, Peers are then
	// unused. Default none.
	EtcdEndpoints []string
	// Listen is the admin HTTP address. Default "127.0.0.1:7070" (loopback:
	// the admin API writes rules).
	Listen string
	// Logger receives the control plane's log. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.DataDir == "" {
		c.DataDir = "./sluice-data"
	}
	if c.Name == "" {
		c.Name = "sluice"
	}
	if c.EtcdListen == "" {
		c.EtcdListen = "127.0.0.1:2379"
	}
	if c.PeerListen == "" {
		c.PeerListen = "127.0.0.1:2380"
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:7070"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Plane is a running control plane.
type Plane struct {
	cfg       Config
	etcd      *embed.Etcd // nil with an external cluster
	cli       *clientv3.Client
	store     *etcdstore.Store
	endpoints []string
	ln        net.Listener
	http      *http.Server
	served    chan struct{}
	closeOnce sync.Once
}

// Start starts etcd (unless EtcdEndpoints names an external cluster) and
// the admin API, and returns once both serve.
func Start(ctx context.Context, cfg Config) (*Plane, error) {
	cfg = cfg.withDefaults()
	p := &Plane{cfg: cfg, served: make(chan struct{})}
	if len(cfg.EtcdEndpoints) > 0 {
		p.endpoints = cfg.EtcdEndpoints
	} else {
		e, err := startEtcd(ctx, cfg)
		if err != nil {
			return nil, err
		}
		p.etcd = e
		p.endpoints = []string{e.Clients[0].Addr().String()}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: p.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("controlplane: etcd client: %w", err)
	}
	p.cli = cli
	p.store = etcdstore.New(cli)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("controlplane: admin listener: %w", err)
	}
	p.ln = ln
	p.http = &http.Server{Handler: p.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(p.served)
		p.http.Serve(ln)
	}()
	cfg.Logger.Info("controlplane: serving", "admin", p.Addr(), "etcd", p.endpoints, "embedded", p.etcd != nil)
	return p, nil
}

// startEtcd starts the embedded etcd and waits until it serves.
func startEtcd(ctx context.Context, cfg Config) (*embed.Etcd, error) {
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.DataDir
	// etcd's own log is mostly noise here (every shutdown logs errors);
	// what matters surfaces through Start's error and Err.
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cu, err := url.Parse("http://" + cfg.EtcdListen)
	if err != nil {
		return nil, fmt.Errorf("controlplane: --etcd-listen %q: %w", cfg.EtcdListen, err)
	}
	pu, err := url.Parse("http://" + cfg.PeerListen)
	if err != nil {
		return nil, fmt.Errorf("controlplane: peer address %q: %w", cfg.PeerListen, err)
	}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	if cfg.Peers != "" {
		var members []string
		for _, m := range strings.Split(cfg.Peers, ",") {
			name, addr, ok := strings.Cut(strings.TrimSpace(m), "=")
			if !ok || name == "" || addr == "" {
				return nil, fmt.Errorf("controlplane: --peers entry %q: want name=host:port", m)
			}
			if !strings.Contains(addr, "://") {
				addr = "http://" + addr
			}
			members = append(members, name+"="+addr)
		}
		ec.InitialCluster = strings.Join(members, ",")
		ec.InitialClusterToken = "sluice"
	} else {
		ec.InitialCluster = ec.InitialClusterFromName(cfg.Name)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("controlplane: data dir: %w", err)
	}
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("controlplane: starting etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("controlplane: etcd: %w", err)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("controlplane: etcd did not become ready: %w", ctx.Err())
	}
}

// Addr is the admin API's address.
func (p *Plane) Addr() string { return p.ln.Addr().String() }

// EtcdEndpoints are the etcd endpoints services should use.
func (p *Plane) EtcdEndpoints() []string { return p.endpoints }

// Close stops the admin API and etcd.
func (p *Plane) Close() error {
	var errs []error
	p.closeOnce.Do(func() {
		if p.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			errs = append(errs, p.http.Shutdown(ctx))
			cancel()
			<-p.served
		}
		if p.cli != nil {
			errs = append(errs, p.cli.Close())
		}
		if p.etcd != nil {
			p.etcd.Close()
		}
	})
	return errors.Join(errs...)
}

// Err reports a failure of the embedded etcd; nil with an external cluster.
func (p *Plane) Err() <-chan error {
	if p.etcd == nil {
		return nil
	}
	return p.etcd.Err()
}
