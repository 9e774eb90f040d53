package client

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/balancer/outlier"
	"github.com/sluicerpc/sluice/balancer/p2c"
	"github.com/sluicerpc/sluice/codec"
	"github.com/sluicerpc/sluice/codec/proto"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/observe/metrics"
	"github.com/sluicerpc/sluice/observe/trace"
	"github.com/sluicerpc/sluice/policy"
	"github.com/sluicerpc/sluice/protocol/ttheader"
	"github.com/sluicerpc/sluice/route"
)

// Option configures a Client.
type Option func(*options)

type options struct {
	middlewares    []endpoint.Middleware
	resolver       discovery.Resolver
	balancer       balancer.Builder
	connsPerAddr   int
	connectTimeout time.Duration
	maxFrameSize   int
	codec          codec.Codec
	shortService   bool
	protocol       Protocol
	grpcOptions    []grpc.DialOption
	dialer         func(ctx context.Context, addr string) (net.Conn, error)
	etcdEndpoints  []string
	policy         *policy.Table
	metrics        *metrics.Metrics
	tracing        *trace.Tracing
	balancerSet    bool // WithBalancer was given
	routes         *route.Table
	caller         string
	callerLabels   map[string]string
}

// Protocol is the wire protocol a Client speaks.
type Protocol int

// The protocols a Client can speak. Every Sluice server answers all three.
const (
	// Native is TTHeader + protobuf, multiplexed; the default and the fastest.
	Native Protocol = iota
	// GRPC is gRPC over HTTP/2 (grpc-go), to call any gRPC server.
	GRPC
	// Connect is the Connect unary protocol over HTTP/1.1 (protobuf body).
	Connect
)

func (p Protocol) String() string {
	switch p {
	case GRPC:
		return "grpc"
	case Connect:
		return "connect"
	}
	return "ttheader"
}

// ParseProtocol parses "native" (or "ttheader"), "grpc" or "connect".
func ParseProtocol(s string) (Protocol, error) {
	switch s {
	case "native", "ttheader", "":
		return Native, nil
	case "grpc":
		return GRPC, nil
	case "connect":
		return Connect, nil
	}
	return 0, fmt.Errorf("client: unknown protocol %q (want native, grpc or connect)", s)
}

// WithProtocol sets the wire protocol (default Native). The same
// middlewares, balancing and call info apply whatever the protocol.
func WithProtocol(p Protocol) Option {
	return func(o *options) { o.protocol = p }
}

// WithGRPCDialOptions passes options to the grpc-go channels a GRPC client
// opens (default: insecure transport credentials).
func WithGRPCDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.grpcOptions = append(o.grpcOptions, opts...) }
}

// DefaultConnsPerAddr is the connection pool size per instance. Two
// connections give two readers on a 2-core machine; more did not raise
// throughput in rpcbench (see README, Performance).
const DefaultConnsPerAddr = 2

// defaultOptions holds every default in one place.
func defaultOptions() options {
	return options{
		balancer:       defaultBalancer(),
		connsPerAddr:   DefaultConnsPerAddr,
		connectTimeout: 2 * time.Second,
		maxFrameSize:   ttheader.DefaultMaxFrameSize,
		codec:          proto.Codec,
	}
}

// WithMiddleware appends middlewares to the client chain; the first one
// given is the outermost.
func WithMiddleware(mws ...endpoint.Middleware) Option {
	return func(o *options) { o.middlewares = append(o.middlewares, mws...) }
}

// WithResolver sets the resolver for the target (default: the target is a
// comma-separated address list, resolved statically).
func WithResolver(r discovery.Resolver) Option {
	return func(o *options) { o.resolver = r }
}

// defaultBalancer is P2C over EWMA latency and in-flight calls, with
// passive outlier ejection (5 failures in a row eject an instance for 30 s
// × its ejection count, at most 300 s, never more than half of the set).
func defaultBalancer() balancer.Builder { return defaultBalancerHooked(nil) }

// defaultBalancerHooked is the default balancer reporting ejections to onEject.
func defaultBalancerHooked(onEject func(addr string, d time.Duration)) balancer.Builder {
	b, err := outlier.New(p2c.New(), outlier.Config{OnEject: onEject})
	if err != nil {
		panic(err) // the zero Config is valid
	}
	return b
}

// WithBalancer sets how an instance is picked (default P2C with outlier
// ejection; see the balancer sub-packages for round-robin, weighted
// round-robin, weighted random and ring hash).
func WithBalancer(b balancer.Builder) Option {
	return func(o *options) {
		if b != nil {
			o.balancer, o.balancerSet = b, true
		}
	}
}

// WithConnsPerAddr sets the connection pool size per instance (default 2).
func WithConnsPerAddr(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.connsPerAddr = n
		}
	}
}

// WithEtcdEndpoints sets the etcd cluster an etcd:///service target is
// resolved in (default: $SLUICE_ETCD, else 127.0.0.1:2379).
func WithEtcdEndpoints(endpoints ...string) Option {
	return func(o *options) { o.etcdEndpoints = endpoints }
}

// WithDialer sets how the native protocol opens connections (default a
// net.Dialer over TCP): unix sockets, network namespaces, tests. The
// context carries the connect timeout.
func WithDialer(dial func(ctx context.Context, addr string) (net.Conn, error)) Option {
	return func(o *options) { o.dialer = dial }
}

// WithConnectTimeout bounds dialing one instance (default 2s); the caller's
// deadline bounds it too when sooner.
func WithConnectTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.connectTimeout = d
		}
	}
}

// WithMaxFrameSize bounds a reply frame, length word included (default 4 MiB).
func WithMaxFrameSize(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxFrameSize = n
		}
	}
}

// WithShortServiceName sends the short service name ("EchoService") in the
// native protocol's isn key instead of the full protobuf name, as Kitex
// clients do. A Sluice server accepts either; a Kitex server that hosts
// several services finds its service only by the short name.
func WithShortServiceName() Option {
	return func(o *options) { o.shortService = true }
}

// WithPolicy applies the TrafficPolicies in t to the client's calls:
// timeouts, retries or hedging, fallbacks, and circuit breakers per method
// and per instance (default none). The policy layers run inside the
// middlewares of WithMiddleware, so those see each call once, whatever its
// attempts. t may change while the client runs (Table.Update,
// Table.Follow); each call uses the policy in force when it starts.
func WithPolicy(t *policy.Table) Option {
	return func(o *options) { o.policy = t }
}

// WithMetrics records the client's calls in m: requests by service, method,
// code and instance, latency, calls in flight and bytes (m.Client(), as the
// outermost middleware, so a call counts once whatever its attempts), and
// the default balancer's ejections. Pass the same m to policy.WithObserver
// for breaker, retry, hedge and fallback counts. Default none.
func WithMetrics(m *metrics.Metrics) Option {
	return func(o *options) { o.metrics = m }
}

// WithTracing traces the client's calls with t: t.Client() runs right
// inside the metrics middleware (WithMetrics) and outside every
// WithMiddleware and WithPolicy middleware, so a call has one client
// span whatever its attempts, and the client makes each call with room
// for its span (trace.ClientRoom), so that a call the sampler drops costs
// no allocation of its own. (Installing t.Client() with WithMiddleware
// traces the same, one allocation dearer per call, and where the
// middlewares put it: inside a retry policy, a span per attempt.)
// Default none.
func WithTracing(t *trace.Tracing) Option {
	return func(o *options) { o.tracing = t }
}

// WithRoutes routes the client's calls by the RouteRule and Lane documents
// in t (default none: every call may go to any instance): before the
// balancer picks, each call is matched against its service's routes and
// sent to the chosen subset of instances (by labels, weights or a sticky
// key), to its lane's instances when it carries a lane in its baggage
// (falling back to the base instances unless the lane is STRICT), mirrored
// to a shadow subset, or delayed and aborted for fault injection. A
// mirrored copy goes out on a bounded queue, fire and forget: it never
// delays or fails the call. A call is routed once: its retries and hedges
// go to the subset its first attempt was sent to (avoiding the instances
// that failed), and only the first attempt is delayed or mirrored. t may
// change while the client runs.
func WithRoutes(t *route.Table) Option {
	return func(o *options) { o.routes = t }
}

// WithCaller names the service this client calls from, and the labels of
// this instance, for route rules that match on the caller (default none).
// The service name also goes to the server with every call (FromService
// on the native protocol, sluice-caller on gRPC and Connect), where it is
// callinfo.Info.Caller: per-caller limits and metrics key on it.
func WithCaller(service string, labels map[string]string) Option {
	return func(o *options) { o.caller, o.callerLabels = service, labels }
}
