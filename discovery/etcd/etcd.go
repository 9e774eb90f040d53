// Package etcd keeps service instances in etcd: a Registry registers them
// under leases it keeps alive, a Resolver watches one service and hands the
// client whole snapshots.
//
// # Key layout
//
// Each instance is one key, Prefix + service + "/" + addr (Prefix defaults
// to "/sluice/services/"), attached to a lease of Config.TTL. Its value is
// JSON:
//
//	/sluice/services/echo/10.0.0.7:8080
//	{"service":"echo","addr":"10.0.0.7:8080","weight":100,"labels":{"version":"v2"}}
//
// weight and labels are left out when unset. Service names must not contain
// "/", so that one service's keys never fall under another's prefix.
//
// # Failures
//
// A Registry keeps each lease alive; when a lease is lost (etcd restarted
// for longer than the TTL, a network partition, the lease was revoked) it
// grants a new one and writes the key again, retrying with jittered backoff
// (100 ms to 5 s) until Deregister or Close. If the process dies, its keys
// go when the lease expires, one TTL later.
//
// A Resolver lists the service, then watches from the revision it listed.
// When the watch fails or its stream reconnects (history compacted, etcd
// lost its leader, etcd restarted, even without its data) it lists again and
// watches again, handing over a snapshot only when the set of instances
// changed. While etcd is unreachable it hands over nothing, so the client
// keeps using the last snapshot; an empty snapshot always means the service
// has no instances.
//
// # Example
//
//	cfg := etcd.Config{Endpoints: etcd.Endpoints("")} // $SLUICE_ETCD or 127.0.0.1:2379
//
//	// server side
//	reg, err := etcd.NewRegistry(cfg)
//	if err != nil { ... }
//	defer reg.Close() // deregisters
//	err = reg.Register(ctx, discovery.Instance{Service: "echo", Addr: "10.0.0.7:8080"})
//
//	// client side
//	res, err := etcd.NewResolver(cfg)
//	if err != nil { ... }
//	defer res.Close()
//	c, err := client.New("etcd:///echo", client.WithResolver(res))
package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/sluicerpc/sluice/discovery"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// ErrClosed is returned by a Registry or Resolver after Close.
var ErrClosed = errors.New("etcd: closed")

// Defaults, as documented on Config.
const (
	// DefaultEndpoint is the etcd Endpoints falls back to.
	DefaultEndpoint = "127.0.0.1:2379"
	// DefaultPrefix is the default key prefix.
	DefaultPrefix = "/sluice/services/"
	// EnvEndpoints names the environment variable Endpoints reads.
	EnvEndpoints = "SLUICE_ETCD"

	defaultTTL            = 10 * time.Second
	defaultDialTimeout    = 5 * time.Second
	defaultRequestTimeout = 5 * time.Second
)

// Config configures a Registry or a Resolver. The zero value is usable.
type Config struct {
	// Endpoints are etcd client URLs, "127.0.0.1:2379" or
	// "https://etcd-0:2379". Default: Endpoints(""), that is
	// $SLUICE_ETCD, else 127.0.0.1:2379. Ignored when Client is set.
	Endpoints []string
	// DialTimeout is handed to the etcd client (clientv3.Config.DialTimeout).
	// Default 5 s. Ignored when Client is set.
	DialTimeout time.Duration
	// RequestTimeout bounds each etcd request made on the caller's behalf
	// or in the background: granting and writing a registration, deleting
	// it, listing a service (so also how long Resolve waits for its first
	// snapshot). Default 5 s.
	RequestTimeout time.Duration
	// TTL is the lease time-to-live of a registration: how long an instance
	// stays registered after its process dies without deregistering.
	// Rounded up to whole seconds. Default 10 s.
	TTL time.Duration
	// Prefix is put before "<service>/<addr>" in every key. A missing
	// trailing "/" is added. Default "/sluice/services/".
	Prefix string
	// Client is an etcd client to use instead of dialing Endpoints; it is
	// shared, not closed by Close. Default nil: dial Endpoints, and close
	// that client on Close.
	Client *clientv3.Client
	// Logger receives warnings about lost leases, failed watches and
	// resyncs. Default slog.Default().
	Logger *slog.Logger
}

// build fills in defaults and checks cfg.
func (cfg Config) build() (Config, error) {
	if cfg.DialTimeout < 0 || cfg.RequestTimeout < 0 || cfg.TTL < 0 {
		return cfg, errors.New("etcd: negative DialTimeout, RequestTimeout or TTL")
	}
	if cfg.Client == nil && len(cfg.Endpoints) == 0 {
		cfg.Endpoints = Endpoints("")
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = defaultRequestTimeout
	}
	if cfg.TTL == 0 {
		cfg.TTL = defaultTTL
	}
	cfg.TTL = cfg.TTL.Round(0)
	if r := cfg.TTL % time.Second; r != 0 {
		cfg.TTL += time.Second - r
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

// client returns cfg.Client, or a new client and true when cfg has none.
func (cfg Config) client() (*clientv3.Client, bool, error) {
	if cfg.Client != nil {
		return cfg.Client, false, nil
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		// Our own warnings go to cfg.Logger; the client's are noise
		// (every retry while etcd is down).
		Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{
			// grpc's default reconnect backoff grows to 2 minutes; after
			// an etcd restart registrations must come back within a TTL.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff: backoff.Config{
					BaseDelay:  100 * time.Millisecond,
					Multiplier: 1.6,
					Jitter:     0.2,
					MaxDelay:   time.Second,
				},
				MinConnectTimeout: cfg.DialTimeout,
			}),
		},
	})
	if err != nil {
		return nil, false, fmt.Errorf("etcd: connecting to %v: %w", cfg.Endpoints, err)
	}
	return cli, true, nil
}

// Endpoints parses a list of etcd endpoints: "127.0.0.1:2379",
// "etcd://127.0.0.1:2379,127.0.0.1:22379" or "http://etcd-0:2379,...".
// An empty s means the SLUICE_ETCD environment variable, and an empty
// variable 127.0.0.1:2379.
func Endpoints(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		s = strings.TrimSpace(os.Getenv(EnvEndpoints))
	}
	s = strings.TrimPrefix(s, "etcd://")
	var eps []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	if len(eps) == 0 {
		eps = []string{DefaultEndpoint}
	}
	return eps
}

// record is the JSON value of a key.
type record struct {
	Service string            `json:"service"`
	Addr    string            `json:"addr"`
	Weight  int               `json:"weight,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// servicePrefix is the prefix of every key of service.
func servicePrefix(prefix, service string) string { return prefix + service + "/" }

// encode returns the value stored for in.
func encode(in discovery.Instance) string {
	b, _ := json.Marshal(record{Service: in.Service, Addr: in.Addr, Weight: in.Weight, Labels: in.Labels})
	return string(b)
}

// decode parses the value of key, a key of service under prefix.
func decode(prefix, service string, key, val []byte) (discovery.Instance, error) {
	var r record
	if err := json.Unmarshal(val, &r); err != nil {
		return discovery.Instance{}, fmt.Errorf("etcd: key %s: %w", key, err)
	}
	if r.Addr == "" {
		r.Addr = strings.TrimPrefix(string(key), servicePrefix(prefix, service))
	}
	if r.Addr == "" {
		return discovery.Instance{}, fmt.Errorf("etcd: key %s: no address", key)
	}
	return discovery.Instance{Service: service, Addr: r.Addr, Weight: r.Weight, Labels: r.Labels}, nil
}

func checkService(service string) error {
	if service == "" {
		return errors.New("etcd: empty service name")
	}
	if strings.Contains(service, "/") {
		return fmt.Errorf("etcd: service name %q contains \"/\"", service)
	}
	return nil
}

func checkInstance(in discovery.Instance) error {
	if err := checkService(in.Service); err != nil {
		return err
	}
	if in.Addr == "" {
		return fmt.Errorf("etcd: instance of %s without an address", in.Service)
	}
	return nil
}

// retry is a capped exponential backoff with equal jitter: each wait is
// between half and all of 100 ms, 200 ms, ... 5 s.
type retry struct{ cur time.Duration }

const (
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
)

func (b *retry) next() time.Duration {
	if b.cur == 0 {
		b.cur = retryMin
	} else {
		b.cur = min(2*b.cur, retryMax)
	}
	return b.cur/2 + rand.N(b.cur/2+1)
}

func (b *retry) reset() { b.cur = 0 }

// bound limits ctx to d and to the life of cli: requests on a closed
// client would otherwise retry until d.
func bound(ctx context.Context, cli *clientv3.Client, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, d)
	stop := context.AfterFunc(cli.Ctx(), cancel)
	return ctx, func() { stop(); cancel() }
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
