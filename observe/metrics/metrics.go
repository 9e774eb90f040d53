package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/breaker"
	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/status"
)

// DefaultBuckets are the latency histograms' bucket upper bounds in
// seconds when Config.Buckets is empty: 0.5ms to 10s.
var DefaultBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// DefaultMaxPeers is Config.MaxPeers when it is zero.
const DefaultMaxPeers = 256

// Peer label values that are not a caller's name or an address.
const (
	// UnknownPeer stands for a caller that sent no service name, or a
	// client call that reached no instance.
	UnknownPeer = "unknown"
	// OtherPeer stands for every peer past Config.MaxPeers.
	OtherPeer = "other"
)

// Config configures Metrics. The zero value of every field means its
// default, given in the field's comment.
type Config struct {
	// Registerer is where the collectors are registered. Default: a new
	// prometheus.Registry of this Metrics alone, holding the Go runtime
	// and process collectors too (see NoRuntimeMetrics), so that two
	// Metrics in one process (tests, say) never collide. Pass
	// prometheus.DefaultRegisterer to join the process-wide registry; a
	// second Metrics on the same Registerer fails with an
	// AlreadyRegisteredError.
	Registerer prometheus.Registerer
	// Gatherer is what Handler serves and Gatherer returns. Default:
	// Registerer when it is also a Gatherer (a *prometheus.Registry is
	// both; prometheus.DefaultRegisterer is the default registry). It is
	// required when Registerer is set and is not a Gatherer.
	Gatherer prometheus.Gatherer
	// Buckets are the latency histograms' bucket upper bounds in seconds,
	// strictly increasing. Default DefaultBuckets.
	Buckets []float64
	// ConstLabels are added to every Sluice metric (not to the runtime
	// ones). Default none.
	ConstLabels prometheus.Labels
	// MaxPeers is the number of distinct "peer" label values kept per
	// side, service and method; calls from or to further peers count
	// under OtherPeer. It keeps a caller that makes up names (the
	// server's peer comes from the wire) from growing the series without
	// bound. Default DefaultMaxPeers; must not be negative.
	MaxPeers int
	// NoRuntimeMetrics leaves the Go runtime and process collectors out
	// of the default registry. Default false: they are in. It must be
	// false when Registerer is set; register them there yourself
	// (prometheus.DefaultRegisterer has them already).
	NoRuntimeMetrics bool
}

// errConfig is wrapped by every configuration error.
var errConfig = errors.New("metrics: invalid config")

// build fills in defaults and validates; it is the one place defaults live.
func (c Config) build() (Config, error) {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("%w: %s = %v, want %s", errConfig, field, v, want)
	}
	if c.Registerer == nil {
		reg := prometheus.NewRegistry()
		if !c.NoRuntimeMetrics {
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		}
		c.Registerer = reg
		if c.Gatherer == nil {
			c.Gatherer = reg
		}
	} else if c.NoRuntimeMetrics {
		return c, bad("NoRuntimeMetrics", true, "false when Registerer is set")
	}
	if c.Gatherer == nil {
		g, ok := c.Registerer.(prometheus.Gatherer)
		if !ok {
			return c, bad("Gatherer", nil, fmt.Sprintf("set, as Registerer (%T) is not a prometheus.Gatherer", c.Registerer))
		}
		c.Gatherer = g
	}
	if len(c.Buckets) == 0 {
		c.Buckets = DefaultBuckets
	}
	for i, b := range c.Buckets {
		if i > 0 && !(b > c.Buckets[i-1]) {
			return c, bad("Buckets", c.Buckets, "strictly increasing")
		}
	}
	if c.MaxPeers == 0 {
		c.MaxPeers = DefaultMaxPeers
	}
	if c.MaxPeers < 0 {
		return c, bad("MaxPeers", c.MaxPeers, ">= 1")
	}
	return c, nil
}

// Metrics records calls and governance events as Prometheus metrics. Make
// one with New; it is safe for concurrent use. A nil *Metrics ignores the
// governance hooks (BreakerStateChange, Rejected, Retry, ...), so that a
// component can hold one that may be absent.
type Metrics struct {
	cfg     Config
	handler http.Handler
	server  *side
	client  *side

	breakerState       *prometheus.GaugeVec
	breakerTransitions *prometheus.CounterVec
	rejected           *prometheus.CounterVec
	retries            *prometheus.CounterVec
	hedges             *prometheus.CounterVec
	fallbacks          *prometheus.CounterVec
	ejections          *prometheus.CounterVec

	rejectedByKey cowMap[rejectKey, prometheus.Counter]
	retriesBy     cowMap[methodKey, prometheus.Counter]
	hedgesBy      cowMap[methodKey, prometheus.Counter]
	fallbacksBy   cowMap[methodKey, prometheus.Counter]
	ejectionsBy   cowMap[string, prometheus.Counter]
}

type methodKey struct{ service, method string }

type rejectKey struct{ side, service, method, reason string }

// New returns Metrics configured by cfg, its collectors registered.
func New(cfg Config) (*Metrics, error) {
	cfg, err := cfg.build()
	if err != nil {
		return nil, err
	}
	m := &Metrics{cfg: cfg}
	cl := cfg.ConstLabels
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: cl}, labels)
	}
	m.server = &side{
		maxPeers: cfg.MaxPeers,
		requests: counter("sluice_server_requests_total",
			"Calls the server handled, by service, method, status code and calling service (peer).",
			"service", "method", "code", "peer"),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_server_handling_seconds", ConstLabels: cl, Buckets: cfg.Buckets,
			Help: "Time from the start of the server's middleware chain to the handler's return, in seconds."},
			[]string{"service", "method"}),
		inflight: prometheus.NewDesc("sluice_server_in_flight_requests", "Calls the server is handling now.",
			[]string{"service", "method"}, cl),
		received: counter("sluice_server_received_bytes_total",
			"Encoded request bytes the server received, framing excluded.", "service", "method"),
		sent: counter("sluice_server_sent_bytes_total",
			"Encoded reply bytes the server sent, framing excluded.", "service", "method"),
	}
	m.client = &side{
		maxPeers: cfg.MaxPeers,
		requests: counter("sluice_client_requests_total",
			"Calls the client made, by service, method, status code and instance address (peer).",
			"service", "method", "code", "peer"),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_client_request_seconds", ConstLabels: cl, Buckets: cfg.Buckets,
			Help: "Duration of client calls as the client middleware sees them, in seconds."},
			[]string{"service", "method"}),
		inflight: prometheus.NewDesc("sluice_client_in_flight_requests", "Calls the client has in flight now.",
			[]string{"service", "method"}, cl),
		sent: counter("sluice_client_sent_bytes_total",
			"Encoded request bytes the client sent, framing excluded.", "service", "method"),
		received: counter("sluice_client_received_bytes_total",
			"Encoded reply bytes the client received, framing excluded.", "service", "method"),
	}
	m.breakerState = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_breaker_state", ConstLabels: cl,
		Help: "State of a circuit breaker: 0 closed, 1 open, 2 half-open."}, []string{"breaker"})
	m.breakerTransitions = counter("sluice_breaker_transitions_total",
		"Circuit breaker state changes, by breaker and states.", "breaker", "from", "to")
	m.rejected = counter("sluice_rejected_requests_total",
		"Calls refused by admission control (rate limits, concurrency limits, load shedding), by side and reason.",
		"side", "service", "method", "reason")
	m.retries = counter("sluice_client_retries_total", "Retry attempts the client made (the first attempt not included).", "service", "method")
	m.hedges = counter("sluice_client_hedges_total", "Hedged attempts the client sent.", "service", "method")
	m.fallbacks = counter("sluice_client_fallbacks_total", "Calls answered by a fallback.", "service", "method")
	m.ejections = counter("sluice_client_ejections_total", "Times an instance was ejected by outlier detection.", "peer")

	for _, c := range []prometheus.Collector{
		m.server.requests, m.server.latency, inflightCollector{m.server}, m.server.received, m.server.sent,
		m.client.requests, m.client.latency, inflightCollector{m.client}, m.client.sent, m.client.received,
		m.breakerState, m.breakerTransitions, m.rejected, m.retries, m.hedges, m.fallbacks, m.ejections,
	} {
		if err := cfg.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: registering collectors: %w", err)
		}
	}
	m.handler = promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})
	return m, nil
}

// Handler serves the Gatherer in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Gatherer returns what Handler serves.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.cfg.Gatherer }

// Server returns the server middleware: it counts calls, observes their
// latency and tracks those in flight. server.WithMetrics installs it
// outermost in the chain and also reports reply sizes (ServerSent).
func (m *Metrics) Server() endpoint.Middleware {
	s := m.server
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		// A server builds one chain per method: its series are the
		// first call's. (Elsewhere, other methods use the map.)
		var first atomic.Pointer[methodSeries]
		return func(ctx context.Context, req, resp any) (err error) {
			info := callinfo.FromContext(ctx)
			if info == nil {
				return next(ctx, req, resp)
			}
			ms := first.Load()
			if ms == nil || ms.service != info.Service || ms.method != info.Method {
				ms = s.series(info.Service, info.Method)
				first.CompareAndSwap(nil, ms)
			}
			ms.inflight.Add(1)
			start := now()
			returned := false
			defer func() {
				code := codes.Internal // a panic: the server answers Internal
				if returned {
					code = codeOf(err)
					if err == nil {
						// The server answers Internal to a nil reply without error.
						if r, ok := resp.(*endpoint.Reply); ok && r.Msg == nil {
							code = codes.Internal
						}
					}
				}
				ms.done(info.Caller, code, start, info.ReceivedBytes, 0)
			}()
			err = next(ctx, req, resp)
			returned = true
			return err
		}
	}
}

// ServerSent adds info.SentBytes to the server's sent bytes of info's
// method. The server calls it once a reply is encoded — after the
// middlewares have returned, so the Server middleware cannot see the
// size; server.WithMetrics wires it.
func (m *Metrics) ServerSent(info *callinfo.Info) {
	if m == nil || info == nil || info.SentBytes <= 0 {
		return
	}
	m.server.series(info.Service, info.Method).sent.Add(float64(info.SentBytes))
}

// Client returns the client middleware: it counts calls by the instance
// they went to, observes their latency, tracks those in flight and adds
// up the bytes the transport reports.
func (m *Metrics) Client() endpoint.Middleware {
	c := m.client
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		// A client's chain serves every method: remember the first
		// method's series, find the others in the map.
		var first atomic.Pointer[methodSeries]
		return func(ctx context.Context, req, resp any) (err error) {
			info := callinfo.FromContext(ctx)
			if info == nil {
				return next(ctx, req, resp)
			}
			ms := first.Load()
			if ms == nil || ms.service != info.Service || ms.method != info.Method {
				ms = c.series(info.Service, info.Method)
				first.CompareAndSwap(nil, ms)
			}
			ms.inflight.Add(1)
			start := now()
			returned := false
			defer func() {
				code := codes.Internal // a panic below us
				if returned {
					code = codeOf(err)
				}
				ms.done(info.Peer, code, start, info.ReceivedBytes, info.SentBytes)
			}()
			err = next(ctx, req, resp)
			returned = true
			return err
		}
	}
}

// BreakerStateChange records a breaker's new state and the transition. It
// has the shape of breaker.Config.OnStateChange, so it can be that field.
func (m *Metrics) BreakerStateChange(name string, from, to breaker.State) {
	if m == nil {
		return
	}
	m.breakerState.WithLabelValues(name).Set(float64(to))
	m.breakerTransitions.WithLabelValues(name, from.String(), to.String()).Inc()
}

// Rejected counts a call admission control refused. side is "server" or
// "client"; reason names the rule, such as "rate_limit", "concurrency" or
// "shed": keep it to a small fixed set.
func (m *Metrics) Rejected(side, service, method, reason string) {
	if m == nil {
		return
	}
	k := rejectKey{side, service, method, reason}
	if c, ok := m.rejectedByKey.load(k); ok {
		c.Inc()
		return
	}
	m.rejectedByKey.getOrCreate(k, func() prometheus.Counter {
		return m.rejected.WithLabelValues(side, service, method, reason)
	}).Inc()
}

// Retry counts a retry attempt of a call to service.method.
func (m *Metrics) Retry(service, method string) {
	if m != nil {
		incMethod(&m.retriesBy, m.retries, service, method)
	}
}

// Hedge counts a hedged attempt of a call to service.method.
func (m *Metrics) Hedge(service, method string) {
	if m != nil {
		incMethod(&m.hedgesBy, m.hedges, service, method)
	}
}

// Fallback counts a call to service.method answered by its fallback.
func (m *Metrics) Fallback(service, method string) {
	if m != nil {
		incMethod(&m.fallbacksBy, m.fallbacks, service, method)
	}
}

// Ejection counts an ejection of the instance at addr by outlier detection.
func (m *Metrics) Ejection(addr string) {
	if m == nil {
		return
	}
	if c, ok := m.ejectionsBy.load(addr); ok {
		c.Inc()
		return
	}
	m.ejectionsBy.getOrCreate(addr, func() prometheus.Counter {
		return m.ejections.WithLabelValues(addr)
	}).Inc()
}

func incMethod(by *cowMap[methodKey, prometheus.Counter], vec *prometheus.CounterVec, service, method string) {
	k := methodKey{service, method}
	if c, ok := by.load(k); ok {
		c.Inc()
		return
	}
	by.getOrCreate(k, func() prometheus.Counter { return vec.WithLabelValues(service, method) }).Inc()
}

// side is the metrics of one side of calls, and the cache of their
// labelled children.
type side struct {
	maxPeers int
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inflight *prometheus.Desc // collected by inflightCollector
	received *prometheus.CounterVec
	sent     *prometheus.CounterVec
	methods  cowMap[methodKey, *methodSeries]
}

// methodSeries is the children of one service and method.
type methodSeries struct {
	side            *side
	service, method string
	latency         prometheus.Observer
	inflight        atomic.Int64
	received        prometheus.Counter
	sent            prometheus.Counter
	peers           cowMap[string, *peerSeries]
}

// peerSeries is the request counters of one peer, one per code, made on
// first use.
type peerSeries struct {
	peer  string
	codes [numCodes]atomic.Pointer[counterRef]
}

type counterRef struct{ c prometheus.Counter }

// numCodes is the number of canonical codes; others count as Unknown.
const numCodes = int(codes.Unauthenticated) + 1

func (s *side) series(service, method string) *methodSeries {
	k := methodKey{service, method}
	if ms, ok := s.methods.load(k); ok {
		return ms
	}
	return s.methods.getOrCreate(k, func() *methodSeries {
		return &methodSeries{
			side:     s,
			service:  service,
			method:   method,
			latency:  s.latency.WithLabelValues(service, method),
			received: s.received.WithLabelValues(service, method),
			sent:     s.sent.WithLabelValues(service, method),
		}
	})
}

// inflightCollector reports the calls in flight of every method of a side.
type inflightCollector struct{ s *side }

func (c inflightCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.s.inflight }

func (c inflightCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.s.methods.m.Load()
	if p == nil {
		return
	}
	for _, ms := range *p {
		ch <- prometheus.MustNewConstMetric(c.s.inflight, prometheus.GaugeValue, float64(ms.inflight.Load()), ms.service, ms.method)
	}
}

// epoch is the origin of now.
var epoch = time.Now()

// now reads the monotonic clock only, which costs half of time.Now.
func now() time.Duration { return time.Since(epoch) }

// done records a finished call.
func (ms *methodSeries) done(peer string, code codes.Code, start time.Duration, received, sent int) {
	ms.latency.Observe((now() - start).Seconds())
	ms.inflight.Add(-1)
	ms.requests(peer, code).Inc()
	if received > 0 {
		ms.received.Add(float64(received))
	}
	if sent > 0 {
		ms.sent.Add(float64(sent))
	}
}

// requests returns the request counter of peer and code.
func (ms *methodSeries) requests(peer string, code codes.Code) prometheus.Counter {
	if peer == "" {
		peer = UnknownPeer
	}
	if int(code) >= numCodes {
		code = codes.Unknown
	}
	ps, ok := ms.peers.load(peer)
	if !ok {
		ps = ms.peer(peer)
	}
	if r := ps.codes[code].Load(); r != nil {
		return r.c
	}
	r := &counterRef{ms.side.requests.WithLabelValues(ms.service, ms.method, codeNames[code], ps.peer)}
	if !ps.codes[code].CompareAndSwap(nil, r) {
		r = ps.codes[code].Load()
	}
	return r.c
}

// peer finds or makes the series of a peer not seen yet, or of OtherPeer
// when there are MaxPeers already.
func (ms *methodSeries) peer(peer string) *peerSeries {
	c := &ms.peers
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.load(peer); ok {
		return ps
	}
	if c.len() >= ms.side.maxPeers {
		peer = OtherPeer
		if ps, ok := c.load(peer); ok {
			return ps
		}
	}
	ps := &peerSeries{peer: peer}
	c.storeLocked(peer, ps)
	return ps
}

// codeOf returns err's code without status.Code's conversions when err is
// a Sluice status error already.
func codeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if e, ok := err.(*status.Error); ok {
		return e.Status().Code()
	}
	return status.Code(err)
}

// codeNames are the gRPC names of the canonical codes, as the gRPC
// specification spells them.
var codeNames = [numCodes]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}

// cowMap is a copy-on-write map: reads are one atomic load and a map
// lookup, without locks or allocation; writes copy the map under a mutex.
// It suits key sets that stop growing early, as label values do.
type cowMap[K comparable, V any] struct {
	m  atomic.Pointer[map[K]V]
	mu sync.Mutex
}

func (c *cowMap[K, V]) load(k K) (V, bool) {
	if m := c.m.Load(); m != nil {
		v, ok := (*m)[k]
		return v, ok
	}
	var zero V
	return zero, false
}

func (c *cowMap[K, V]) len() int {
	if m := c.m.Load(); m != nil {
		return len(*m)
	}
	return 0
}

// getOrCreate returns k's value, storing create() first when k is absent.
func (c *cowMap[K, V]) getOrCreate(k K, create func() V) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.load(k); ok {
		return v
	}
	v := create()
	c.storeLocked(k, v)
	return v
}

// storeLocked adds k, absent, with its value v; c.mu must be held.
func (c *cowMap[K, V]) storeLocked(k K, v V) {
	var old map[K]V
	if p := c.m.Load(); p != nil {
		old = *p
	}
	next := make(map[K]V, len(old)+1)
	for ok, ov := range old {
		next[ok] = ov
	}
	next[k] = v
	c.m.Store(&next)
}
