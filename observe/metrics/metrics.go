package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/breaker"
	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/internal/runtimex"
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
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, cl)
	}
	m.server = &side{
		maxPeers: cfg.MaxPeers,
		upper:    cfg.Buckets,
		requests: desc("sluice_server_requests_total",
			"Calls the server handled, by service, method, status code and calling service (peer).",
			"service", "method", "code", "peer"),
		latency: desc("sluice_server_handling_seconds",
			"Time from the start of the server's middleware chain to the handler's return, in seconds.",
			"service", "method"),
		inflight: desc("sluice_server_in_flight_requests", "Calls the server is handling now.", "service", "method"),
		received: desc("sluice_server_received_bytes_total",
			"Encoded request bytes the server received, framing excluded.", "service", "method"),
		sent: desc("sluice_server_sent_bytes_total",
			"Encoded reply bytes the server sent, framing excluded.", "service", "method"),
	}
	m.client = &side{
		maxPeers: cfg.MaxPeers,
		upper:    cfg.Buckets,
		routed:   true,
		requests: desc("sluice_client_requests_total",
			"Calls the client made, by service, method, status code, instance address (peer), and the route and subset that route rules chose.",
			"service", "method", "code", "peer", "route", "subset"),
		latency: desc("sluice_client_request_seconds",
			"Duration of client calls as the client middleware sees them, in seconds.",
			"service", "method"),
		inflight: desc("sluice_client_in_flight_requests", "Calls the client has in flight now.", "service", "method"),
		sent: desc("sluice_client_sent_bytes_total",
			"Encoded request bytes the client sent, framing excluded.", "service", "method"),
		received: desc("sluice_client_received_bytes_total",
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
		m.server, m.client,
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
// Latency starts at the call info's Start, which the server sets as the
// chain begins, and ends when the chain returns.
func (m *Metrics) Server() endpoint.Middleware {
	s := m.server
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		// A server builds one chain per method: its series are the
		// first call's. (Elsewhere, other methods use the map.)
		var first atomic.Pointer[methodSeries]
		return func(ctx context.Context, req, resp any) (err error) {
			var c call
			if !s.begin(&c, ctx, &first) {
				return next(ctx, req, resp)
			}
			// The server sets Start as the chain begins: no clock read.
			if c.start = c.info.Start; c.start.IsZero() {
				c.start = now()
			}
			defer s.finishServer(&c, resp, &err) // on a panic too
			err = next(ctx, req, resp)
			c.returned = true
			return err
		}
	}
}

// call is a counted call in progress: what its middleware keeps, on its
// stack, across the call. The middlewares' own frames stay small on
// purpose: while a call waits for its reply, its goroutine's stack holds
// them, and the garbage collector decodes every frame of every waiting
// stack on each cycle, at a cost that grows with the function's size.
type call struct {
	ms *methodSeries
	// shard is the core's shard when the call began; the server ends
	// the call there too (a handler mostly runs on without parking).
	shard    []atomic.Uint64
	info     *callinfo.Info
	start    time.Time
	returned bool // false in finish: a panic went through
}

// begin counts the call of ctx as begun, in the series first caches
// when it is the same method; false when ctx has no call info.
func (s *side) begin(c *call, ctx context.Context, first *atomic.Pointer[methodSeries]) bool {
	info := callinfo.FromContext(ctx)
	if info == nil {
		return false
	}
	ms := first.Load()
	if ms == nil || ms.service != info.Service || ms.method != info.Method {
		ms = s.series(info.Service, info.Method)
		first.CompareAndSwap(nil, ms)
	}
	// Field by field: c is on the caller's stack, and a composite
	// literal would be built aside and copied with write barriers.
	c.ms, c.shard, c.info = ms, ms.begin(), info
	return true
}

// finishServer records the server call c, which returned *err with resp,
// or panicked.
func (s *side) finishServer(c *call, resp any, err *error) {
	code := codes.Internal // a panic: the server answers Internal
	if c.returned {
		code = codeOf(*err)
		if *err == nil {
			// The server answers Internal to a nil reply without error.
			if r, ok := resp.(*endpoint.Reply); ok && r.Msg == nil {
				code = codes.Internal
			}
		}
	}
	// One read of the monotonic clock: c.start has a monotonic reading.
	c.ms.done(c.shard, peerKey{peer: c.info.Caller}, code, time.Since(c.start), c.info.ReceivedBytes, 0)
}

// ServerSent adds info.SentBytes to the server's sent bytes of info's
// method. The server calls it once a reply is encoded — after the
// middlewares have returned, so the Server middleware cannot see the
// size; server.WithMetrics wires it.
func (m *Metrics) ServerSent(info *callinfo.Info) {
	if m == nil || info == nil || info.SentBytes <= 0 {
		return
	}
	s := m.server
	ms := s.firstSent.Load()
	if ms == nil || ms.service != info.Service || ms.method != info.Method {
		ms = s.series(info.Service, info.Method)
		s.firstSent.CompareAndSwap(nil, ms)
	}
	ms.shards.local()[cntSent].Add(uint64(info.SentBytes))
}

// Client returns the client middleware: it counts calls by the instance
// they went to, observes their latency, tracks those in flight and adds
// up the bytes the transport reports. Latency runs from the call's Start
// to the End of its latest attempt that reached an instance, as the
// client records them in the call info (and as breakers time calls),
// without reading the clock again; the clock stands in for what the call
// info lacks.
func (m *Metrics) Client() endpoint.Middleware {
	s := m.client
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		// A client's chain serves every method: remember the first
		// method's series, find the others in the map.
		var first atomic.Pointer[methodSeries]
		return func(ctx context.Context, req, resp any) (err error) {
			var c call
			if !s.begin(&c, ctx, &first) {
				return next(ctx, req, resp)
			}
			// The call's own Start and End, as the client sets them, as
			// breakers time calls: the clock only for what they miss
			// (a later attempt's start, a call that reached no instance).
			if c.start = c.info.Start; c.info.Attempt > 1 || c.start.IsZero() {
				c.start = now()
			}
			defer s.finishClient(&c, &err) // on a panic too
			err = next(ctx, req, resp)
			c.returned = true
			return err
		}
	}
}

// finishClient records the client call c, which returned *err, or
// panicked.
func (s *side) finishClient(c *call, err *error) {
	code := codes.Internal // a panic below us
	if c.returned {
		code = codeOf(*err)
	}
	info := c.info
	end := info.End
	if end.Before(c.start) {
		end = now()
	}
	// The shard the call began on: the caller's goroutine waited for the
	// reply and may be on another core by now, which costs sharing a
	// line now and then, never a count, and saves finding the core again.
	c.ms.done(c.shard, peerKey{info.Peer, info.Route, info.Subset}, code, end.Sub(c.start), info.ReceivedBytes, info.SentBytes)
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

// side is the metrics of one side of calls: the counts of every method
// it has seen, which it collects itself.
type side struct {
	maxPeers int
	routed   bool      // requests carry the labels route and subset
	upper    []float64 // the latency buckets' upper bounds
	requests *prometheus.Desc
	latency  *prometheus.Desc
	inflight *prometheus.Desc
	received *prometheus.Desc
	sent     *prometheus.Desc
	methods  cowMap[methodKey, *methodSeries]
	// firstSent is the series of the first method ServerSent saw, found
	// without a map lookup (a server with one busy method, say).
	firstSent atomic.Pointer[methodSeries]
}

// The counts of a method's shard: these, then the latency buckets (one
// per upper bound, then +Inf), then the OK calls of the first hotPeers
// peers (others count in their peerSeries).
const (
	cntStarted  = iota // calls begun; in flight: begun minus observed
	cntSum             // the latency sum in nanoseconds
	cntReceived        // bytes
	cntSent            // bytes
	cntBuckets         // the first latency bucket
)

// hotPeers is the number of peers per method whose OK calls count in the
// method's shards: the common case, a call that succeeds, then touches no
// line another core writes.
const hotPeers = 8

// okCount returns the index, in a shard, of the OK calls of peer i.
func (s *side) okCount(i int) int { return cntBuckets + len(s.upper) + 1 + i }

// methodSeries is the counts of one service and method.
//
// A call adds to its method's counts twice (as it begins and as it
// ends), and on a busy multi-core host fetching the cache line another
// core wrote last costs more than the additions themselves. So the
// counts are sharded, one shard per P (the scheduler's core: coreShard),
// each on cache lines of its own; collecting sums the shards.
// (Prometheus's own vectors would spread a call over half a dozen
// objects, some sharing a line with what every core writes.)
type methodSeries struct {
	side            *side
	service, method string
	created         time.Time
	shards          shards
	peers           cowMap[peerKey, *peerSeries]
	// first is the series of the first peer (with its route and subset)
	// seen, found without hashing the key: a server's one caller, say.
	// Set once, so that calls to many peers do not all write it.
	first atomic.Pointer[peerSeries]
}

// peerKey is what a method's request counts are kept by besides the
// code: the peer, and on the client the route and subset the call was
// routed by (callinfo.Info.Route and Subset; empty when unrouted).
type peerKey struct{ peer, route, subset string }

// peerSeries is the request counts of one peer (and route and subset),
// by code: all of them but the OK calls of the first hotPeers peers, which
// count in the method's shards.
type peerSeries struct {
	key     peerKey
	index   int // among the method's peers, in the order they came
	created time.Time
	codes   [numCodes]atomic.Uint64
}

// numCodes is the number of canonical codes; others count as Unknown.
const numCodes = int(codes.Unauthenticated) + 1

func (s *side) series(service, method string) *methodSeries {
	k := methodKey{service, method}
	if ms, ok := s.methods.load(k); ok {
		return ms
	}
	return s.methods.getOrCreate(k, func() *methodSeries {
		return &methodSeries{
			side:    s,
			service: service,
			method:  method,
			created: time.Now(),
			shards:  newShards(s.okCount(hotPeers)),
		}
	})
}

// shards is a set of counters kept once per core, each copy on cache
// lines of its own.
type shards struct {
	counts []atomic.Uint64
	mask   int // copies - 1, a power of two less one
	stride int // counters from one copy to the next: whole cache lines
	width  int // counters in a copy
}

// maxShards bounds the copies, and so the memory, of a set of counters.
const maxShards = 64

// newShards makes sets of width counters, one per P, rounded up to a
// power of two (Ps added later share copies).
func newShards(width int) shards {
	const line = 64 / 8 // counters per cache line
	n := 1
	for n < runtime.GOMAXPROCS(0) && n < maxShards {
		n *= 2
	}
	stride := (width + line - 1) / line * line
	buf := make([]atomic.Uint64, n*stride+line-1)
	// Start on a cache line: the garbage collector does not move objects.
	off := int(-uintptr(unsafe.Pointer(&buf[0])) % 64 / 8)
	return shards{counts: buf[off : off+n*stride], mask: n - 1, stride: stride, width: width}
}

// local returns the copy of the core the caller runs on, or most likely
// did a moment ago.
func (s *shards) local() []atomic.Uint64 {
	i := (coreShard() & s.mask) * s.stride
	return s.counts[i : i+s.width : i+s.width]
}

// sum returns counter i summed over the copies.
func (s *shards) sum(i int) uint64 {
	var n uint64
	for j := i; j < len(s.counts); j += s.stride {
		n += s.counts[j].Load()
	}
	return n
}

// coreShard returns the id of the P (the scheduler's core) the caller
// runs on, or did a moment ago: calls on one core add to one copy.
func coreShard() int { return runtimex.P() }

// Describe implements prometheus.Collector.
func (s *side) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range [...]*prometheus.Desc{s.requests, s.latency, s.inflight, s.received, s.sent} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the metrics of every method
// seen, as constant metrics made from the counts.
func (s *side) Collect(ch chan<- prometheus.Metric) {
	p := s.methods.m.Load()
	if p == nil {
		return
	}
	for _, ms := range *p {
		sh := &ms.shards
		// Observed before begun: every call observed had begun, so the
		// difference is never below zero.
		var observed uint64
		buckets := make(map[float64]uint64, len(s.upper))
		for i, u := range s.upper {
			observed += sh.sum(cntBuckets + i)
			buckets[u] = observed
		}
		observed += sh.sum(cntBuckets + len(s.upper))
		begun := sh.sum(cntStarted)
		sum := time.Duration(sh.sum(cntSum)).Seconds()
		ch <- prometheus.MustNewConstHistogramWithCreatedTimestamp(s.latency, observed, sum, buckets, ms.created, ms.service, ms.method)
		ch <- prometheus.MustNewConstMetric(s.inflight, prometheus.GaugeValue, float64(max(int64(begun-observed), 0)), ms.service, ms.method)
		ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(s.received, prometheus.CounterValue, float64(sh.sum(cntReceived)), ms.created, ms.service, ms.method)
		ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(s.sent, prometheus.CounterValue, float64(sh.sum(cntSent)), ms.created, ms.service, ms.method)
		pp := ms.peers.m.Load()
		if pp == nil {
			continue
		}
		for _, ps := range *pp {
			for c := range ps.codes {
				n := ps.codes[c].Load()
				if c == int(codes.OK) && ps.index < hotPeers {
					n += sh.sum(s.okCount(ps.index))
				}
				if n == 0 {
					continue
				}
				k := ps.key
				if s.routed {
					ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(s.requests, prometheus.CounterValue, float64(n), ps.created, ms.service, ms.method, status.Name(codes.Code(c)), k.peer, k.route, k.subset)
				} else {
					ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(s.requests, prometheus.CounterValue, float64(n), ps.created, ms.service, ms.method, status.Name(codes.Code(c)), k.peer)
				}
			}
		}
	}
}

// epoch is the origin of now.
var epoch = time.Now()

// now reads the monotonic clock only, which costs half of time.Now (its
// wall reading follows from epoch's).
func now() time.Time { return epoch.Add(time.Since(epoch)) }

// begin counts a call that begins and returns the shard of the core it
// runs on.
func (ms *methodSeries) begin() []atomic.Uint64 {
	c := ms.shards.local()
	c[cntStarted].Add(1)
	return c
}

// done records, in shard c, a finished call that took latency.
func (ms *methodSeries) done(c []atomic.Uint64, peer peerKey, code codes.Code, latency time.Duration, received, sent int) {
	v := latency.Seconds()
	i := len(ms.side.upper)
	for j, u := range ms.side.upper {
		if v <= u {
			i = j
			break
		}
	}
	c[cntBuckets+i].Add(1)
	c[cntSum].Add(uint64(max(latency, 0)))
	if received > 0 {
		c[cntReceived].Add(uint64(received))
	}
	if sent > 0 {
		c[cntSent].Add(uint64(sent))
	}
	ps := ms.peerSeries(peer)
	if code == codes.OK && ps.index < hotPeers {
		c[ms.side.okCount(ps.index)].Add(1)
		return
	}
	if int(code) >= numCodes {
		code = codes.Unknown
	}
	ps.codes[code].Add(1)
}

// peerSeries returns the series of peer.
func (ms *methodSeries) peerSeries(peer peerKey) *peerSeries {
	if peer.peer == "" {
		peer.peer = UnknownPeer
	}
	first := ms.first.Load()
	if first != nil && first.key == peer {
		return first
	}
	ps, ok := ms.peers.load(peer)
	if !ok {
		ps = ms.peer(peer)
	}
	if first == nil {
		ms.first.CompareAndSwap(nil, ps)
	}
	return ps
}

// peer finds or makes the series of a peer not seen yet, or of OtherPeer
// when there are MaxPeers already.
func (ms *methodSeries) peer(peer peerKey) *peerSeries {
	c := &ms.peers
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.load(peer); ok {
		return ps
	}
	if c.len() >= ms.side.maxPeers {
		peer = peerKey{peer: OtherPeer}
		if ps, ok := c.load(peer); ok {
			return ps
		}
	}
	ps := &peerSeries{key: peer, index: c.len(), created: time.Now()}
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
