package retry

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// HedgeConfig is a hedging policy. The zero value of each field means its
// default, except Delay, which must be set unless UseP95 is.
type HedgeConfig struct {
	// MaxAttempts counts the first attempt. Default 2. It must be between
	// 2 and 5: 1 would never hedge, and beyond 5 (gRPC's bound) hedges
	// only multiply the load.
	MaxAttempts int
	// Delay is how long an attempt may go unanswered before the next one
	// is sent. Required unless UseP95; with UseP95 it is the delay used
	// until MinSamples latencies have been seen, default 10ms.
	Delay time.Duration
	// UseP95 waits the p95 latency of the recent successful calls through
	// this Hedger (measured from the call's start to its reply) instead of
	// Delay, once MinSamples of them fall within Window.
	UseP95 bool
	// MinSamples is how many successful calls Window must hold before
	// UseP95 trusts their p95. Default 20.
	MinSamples int
	// Window is how far back latencies count for UseP95: the latest half
	// window and the one before it. Default 10s.
	Window time.Duration
	// NonFatalCodes are the codes on which a failed attempt sends the next
	// one at once instead of waiting for the delay, while the attempts
	// still running go on. Any other error ends the call with that error
	// and cancels the rest. Default: Unavailable.
	NonFatalCodes []codes.Code
	// Budget bounds hedges across all calls through this Hedger: every
	// attempt after the first spends one retry from it. Default: a new
	// Budget with its defaults (10% of calls plus 10 per second). A
	// Budget may be shared with retry policies.
	Budget *Budget
	// Clock tells the time: call latencies for UseP95 and the budget's
	// window. Default: the system clock.
	Clock Clock
	// AfterFunc runs f in its own goroutine once d has passed, unless the
	// returned Timer is stopped first, as time.AfterFunc does. Default:
	// time.AfterFunc. Tests replace it to fire hedges by hand.
	AfterFunc func(d time.Duration, f func()) Timer
	// OnHedge, when set, is called as each backup attempt is sent, with
	// the attempt's own info (its Attempt is the hedge's number). Metrics
	// hook it here. Default none.
	OnHedge func(info *callinfo.Info)
}

// Timer is a pending AfterFunc; *time.Timer is one. A Hedger re-arms the
// timers of calls answered in time with Reset instead of making new ones.
type Timer interface {
	// Stop prevents the function from running. It returns false when the
	// function has already started (or the timer was stopped before).
	Stop() bool
	// Reset arms a stopped timer to run the function once d has passed.
	Reset(d time.Duration) bool
}

// Hedger sends backup requests (hedges) for idempotent methods: if the
// first attempt has not answered within the delay, it sends another to a
// different instance, and so on up to MaxAttempts; the first success
// wins and the others are cancelled. Use it only for methods that are safe
// to run more than once. Safe for concurrent use.
//
//	h, err := retry.NewHedger(retry.HedgeConfig{Delay: 20 * time.Millisecond})
//	c, err := client.New(target, client.WithMiddleware(h.Middleware()))
//
// The first attempt runs on the caller's goroutine with the caller's
// response and call info, so a call answered within the delay costs a
// cancellable context and the re-arming of a pooled timer, and nothing is
// copied. Each hedge runs on its own goroutine with its own context,
// callinfo.Info and response message, which the transport decodes into;
// its Attempt is the caller's plus its rank, and its Avoid adds the
// instances earlier attempts of the call went to. The winner's message
// is copied into the caller's response, and its Peer, Attempt and
// ResponseMetadata into the caller's Info. The call returns once every
// attempt it started has ended: the losers are cancelled and stop at once,
// so this costs microseconds, and no attempt is left reading the request
// or writing anything after the call returns.
//
// Each attempt reports the instance it was sent to through
// callinfo.Info.OnPick, and a hedge avoids every instance the call's
// attempts were sent to, still running or failed, when the picker offers
// another.
//
// A response that is not a proto.Message, or a context without call info,
// is not hedged: the call goes through once.
type Hedger struct {
	cfg      HedgeConfig
	nonFatal [codes.Unauthenticated + 1]bool
	lat      *latencies // nil unless UseP95
	calls    sync.Pool  // of *hedgeCall whose timer is stopped and unused
}

// Defaults and bounds of HedgeConfig.
const (
	defaultHedgeAttempts = 2
	maxHedgeAttempts     = 5
	defaultHedgeDelay    = 10 * time.Millisecond
	defaultMinSamples    = 20
	defaultP95Window     = 10 * time.Second
)

// NewHedger validates cfg and fills in its defaults. Errors name the field.
func NewHedger(cfg HedgeConfig) (*Hedger, error) {
	switch {
	case cfg.MaxAttempts < 0 || cfg.MaxAttempts == 1 || cfg.MaxAttempts > maxHedgeAttempts:
		return nil, fmt.Errorf("retry: hedge maxAttempts %d must be between 2 and %d (it counts the first attempt)", cfg.MaxAttempts, maxHedgeAttempts)
	case cfg.Delay < 0:
		return nil, fmt.Errorf("retry: hedge delay %v must not be negative", cfg.Delay)
	case cfg.Delay == 0 && !cfg.UseP95:
		return nil, errors.New("retry: hedge delay must be set unless useP95 is")
	case cfg.MinSamples < 0:
		return nil, fmt.Errorf("retry: hedge minSamples %d must not be negative", cfg.MinSamples)
	case cfg.Window < 0:
		return nil, fmt.Errorf("retry: hedge window %v must not be negative", cfg.Window)
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = defaultHedgeAttempts
	}
	if cfg.Delay == 0 {
		cfg.Delay = defaultHedgeDelay
	}
	if cfg.MinSamples == 0 {
		cfg.MinSamples = defaultMinSamples
	}
	if cfg.Window == 0 {
		cfg.Window = defaultP95Window
	}
	if cfg.Window < 2*time.Millisecond {
		return nil, fmt.Errorf("retry: hedge window %v must be at least 2ms", cfg.Window)
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.AfterFunc == nil {
		cfg.AfterFunc = afterFunc
	}
	if cfg.Budget == nil {
		cfg.Budget = NewBudget(BudgetConfig{Clock: cfg.Clock})
	}
	h := &Hedger{cfg: cfg}
	cs := cfg.NonFatalCodes
	if cs == nil {
		cs = []codes.Code{codes.Unavailable}
	}
	for _, c := range cs {
		if c == codes.OK || c > codes.Unauthenticated {
			return nil, fmt.Errorf("retry: hedge nonFatalCodes: %v is not an error code", c)
		}
		h.nonFatal[c] = true
	}
	if cfg.UseP95 {
		h.lat = newLatencies(cfg.Window, cfg.MinSamples)
	}
	return h, nil
}

func afterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Delay returns how long the next call would wait before its first hedge:
// the configured Delay, or with UseP95 the p95 of recent successful calls
// once enough of them have been seen.
func (h *Hedger) Delay() time.Duration {
	if h.lat == nil {
		return h.cfg.Delay
	}
	return h.delayAt(h.cfg.Clock.Now())
}

func (h *Hedger) delayAt(now time.Time) time.Duration {
	if h.lat == nil {
		return h.cfg.Delay
	}
	if d := h.lat.p95(now); d > 0 {
		return d
	}
	return h.cfg.Delay
}

func (h *Hedger) isNonFatal(err error) bool {
	c := status.Code(err)
	return int(c) < len(h.nonFatal) && h.nonFatal[c]
}

// Middleware returns the client middleware that hedges each call. Place it
// outside (before) middlewares that should see each attempt, such as
// per-instance breakers; do not combine it with a retry Policy on the same
// calls (as in gRPC, a method is either retried or hedged).
func (h *Hedger) Middleware() endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			info := callinfo.FromContext(ctx)
			msg, ok := resp.(proto.Message)
			if info == nil || !ok {
				return next(ctx, req, resp)
			}
			return h.call(ctx, info, next, req, msg)
		}
	}
}

// hedgeCall is the state of one call. A call answered within the delay
// returns it to its Hedger's pool, timer included; a call that hedged
// leaves it to the collector, as its timer's goroutine may still hold it.
type hedgeCall struct {
	h    *Hedger
	ctx  context.Context // the caller's
	next endpoint.Endpoint
	req  any
	resp proto.Message            // the caller's
	typ  protoreflect.MessageType // resp's: hedges decode into new messages of it
	// tmpl is the caller's Info as the call began: hedges start from a
	// copy of it, never from the Info the first attempt is writing.
	tmpl    callinfo.Info
	cancel1 context.CancelFunc // cancels the first attempt
	timer   Timer              // runs fire; made once per hedgeCall

	mu      sync.Mutex       // guards the lazy making of the channels, and picked
	picked  []string         // the instances the call's attempts were sent to
	onPick  func(string)     // records into picked; made once per hedgeCall
	results chan hedgeResult // every attempt reports here once; never blocks
	outcome chan hedgeResult // the verdict of a driver on the timer's goroutine
}

// hedgeAttempt is a hedge's own context, call info and response.
type hedgeAttempt struct {
	ctx    callinfo.Carrier
	cancel context.CancelFunc
	resp   proto.Message
}

type hedgeResult struct {
	err  error
	peer string        // the instance the attempt ran on, once it ended
	a    *hedgeAttempt // nil for the first attempt, which uses the caller's resp and Info
}

func (h *Hedger) call(ctx context.Context, info *callinfo.Info, next endpoint.Endpoint, req any, resp proto.Message) error {
	var start time.Time
	if h.lat != nil {
		start = h.cfg.Clock.Now()
	}
	h.cfg.Budget.recordCallFor(info.Start)
	c, _ := h.calls.Get().(*hedgeCall)
	if c == nil {
		c = &hedgeCall{h: h}
		c.onPick = c.recordPick
	}
	// Every attempt reports the instance it was sent to, so that a hedge
	// goes elsewhere; the caller's own OnPick is put back at the end.
	callerPick := info.OnPick
	info.OnPick = c.onPick
	defer func() { info.OnPick = callerPick }()
	c.ctx, c.next, c.req, c.resp, c.typ, c.tmpl = ctx, next, req, resp, resp.ProtoReflect().Type(), *info
	ctx1, cancel := context.WithCancel(ctx)
	defer cancel()
	c.cancel1 = cancel
	if d := h.delayAt(start); c.timer == nil {
		c.timer = h.cfg.AfterFunc(d, c.fire)
	} else {
		c.timer.Reset(d)
	}
	err := next(ctx1, req, resp)
	var r hedgeResult
	if c.timer.Stop() {
		// No hedge was sent: the timer and c are free again.
		if err != nil && h.isNonFatal(err) && ctx.Err() == nil {
			r = c.drive(&hedgeResult{err: err, peer: info.Peer})
		} else {
			r.err = err
		}
		*c = hedgeCall{h: h, timer: c.timer, onPick: c.onPick, picked: c.picked[:0]}
		h.calls.Put(c)
	} else {
		// The timer fired: a driver runs on its goroutine. Report and wait
		// for the verdict.
		results, outcome := c.chans()
		results <- hedgeResult{err: err, peer: info.Peer}
		r = <-outcome
	}
	if r.a != nil { // a hedge decided the call: its results become the caller's
		if r.err == nil {
			proto.Reset(resp)
			proto.Merge(resp, r.a.resp)
		}
		ai := &r.a.ctx.Info
		info.Peer, info.Attempt, info.ResponseMetadata = ai.Peer, ai.Attempt, ai.ResponseMetadata
	}
	if r.err == nil && h.lat != nil {
		now := h.cfg.Clock.Now()
		h.lat.record(now, now.Sub(start))
	}
	return r.err
}

func (c *hedgeCall) recordPick(addr string) {
	c.mu.Lock()
	c.picked = append(c.picked, addr)
	c.mu.Unlock()
}

// inUse returns the instances the call's attempts were sent to.
func (c *hedgeCall) inUse() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.picked...)
}

// chans returns the call's channels, making them on first use, so that a
// call answered within the delay makes none.
func (c *hedgeCall) chans() (results, outcome chan hedgeResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.results == nil {
		c.results = make(chan hedgeResult, c.h.cfg.MaxAttempts)
		c.outcome = make(chan hedgeResult, 1)
	}
	return c.results, c.outcome
}

// fire runs on the timer's goroutine once the first attempt has gone
// unanswered for the delay.
func (c *hedgeCall) fire() {
	_, outcome := c.chans()
	outcome <- c.drive(nil)
}

// drive sends the hedges and decides the call. The first attempt is
// either still running on the caller's goroutine (first == nil; it will
// report on results) or has failed with a non-fatal error (*first). drive
// returns once every attempt it knows of has ended.
func (c *hedgeCall) drive(first *hedgeResult) hedgeResult {
	h := c.h
	results, _ := c.chans()
	var (
		started = 1 // attempts sent, the first included
		running = 1 // attempts that have not reported
		last    hedgeResult
		failed  []string // instances attempts failed on
		hedges  []*hedgeAttempt
		more    = true // another hedge may be sent
		timer   Timer
		gen     int // the generation of timer; stale ticks are ignored
		ticks   chan int
	)
	defer func() { // release the hedges' contexts, whoever won
		for _, a := range hedges {
			a.cancel()
		}
	}()
	if first != nil {
		running, last = 0, *first
		if first.peer != "" {
			failed = append(failed, first.peer)
		}
	}
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
			timer = nil
			gen++
		}
	}
	for send := true; ; {
		if send && more {
			if started >= h.cfg.MaxAttempts || c.ctx.Err() != nil || !h.cfg.Budget.allowRetry() {
				more = false
			} else {
				stopTimer()
				started++
				running++
				hedges = append(hedges, c.start(started, append(c.inUse(), failed...), results))
				if started < h.cfg.MaxAttempts {
					if ticks == nil {
						ticks = make(chan int, h.cfg.MaxAttempts)
					}
					g := gen
					timer = h.cfg.AfterFunc(h.delayAt(h.cfg.Clock.Now()), func() { ticks <- g })
				}
			}
		}
		if running == 0 {
			stopTimer()
			return last // every attempt failed with a non-fatal error
		}
		send = false
		select {
		case r := <-results:
			running--
			if r.err == nil || !h.isNonFatal(r.err) {
				// A success wins; a fatal error ends the call. Either way
				// the others are cancelled and waited for.
				stopTimer()
				c.cancel1()
				for _, a := range hedges {
					a.cancel()
				}
				for ; running > 0; running-- {
					<-results
				}
				return r
			}
			last = r
			if r.peer != "" {
				failed = append(failed, r.peer)
			}
			send = true
		case g := <-ticks:
			send = g == gen
		}
	}
}

// start sends attempt n on its own goroutine, steered away from the
// instances in avoid.
func (c *hedgeCall) start(n int, avoid []string, results chan<- hedgeResult) *hedgeAttempt {
	a := &hedgeAttempt{resp: c.typ.New().Interface()}
	ctx, cancel := context.WithCancel(c.ctx)
	a.ctx.Context, a.cancel = ctx, cancel
	info := &a.ctx.Info
	*info = c.tmpl
	info.Attempt = c.tmpl.Attempt + n - 1
	info.Peer = ""
	info.ResponseMetadata = nil
	info.Avoid = append(append(make([]string, 0, len(c.tmpl.Avoid)+len(avoid)), c.tmpl.Avoid...), avoid...)
	if f := c.h.cfg.OnHedge; f != nil {
		f(info)
	}
	go func() {
		err := c.next(&a.ctx, c.req, a.resp)
		results <- hedgeResult{err: err, peer: info.Peer, a: a}
	}()
	return a
}

// latencies keeps the latencies of recent successful calls in a log-scale
// histogram (8 buckets per doubling: within 12.5%) over two half windows,
// the current one and the one before. Recording is a few atomic adds; the
// p95 is recomputed every 16 samples and read with one atomic load.
type latencies struct {
	half       int64 // ns
	minSamples uint64
	start      atomic.Int64  // UnixNano when the current half began; 0 before the first sample
	cur        atomic.Uint32 // index of the current half
	counts     [2][latBuckets]atomic.Uint32
	seen       atomic.Uint32
	p95ns      atomic.Int64 // 0 while fewer than minSamples
}

const (
	latSubBits  = 3 // 8 sub-buckets per doubling
	latMaxMicro = 1<<26 - 1
	latBuckets  = (26-latSubBits)<<latSubBits + 1<<latSubBits // up to ~67s
)

func newLatencies(window time.Duration, minSamples int) *latencies {
	return &latencies{half: int64(window / 2), minSamples: uint64(minSamples)}
}

// latBucket maps d to its bucket: microseconds below 16 each have one;
// above, each doubling is cut into 8.
func latBucket(d time.Duration) int {
	v := uint64(max(d, 0) / time.Microsecond)
	v = min(v, latMaxMicro)
	if v < 2<<latSubBits {
		return int(v)
	}
	e := bits.Len64(v) - latSubBits - 1
	return e<<latSubBits + int(v>>e)
}

// latUpper is the upper bound of bucket i.
func latUpper(i int) time.Duration {
	if i < 2<<latSubBits {
		return time.Duration(i+1) * time.Microsecond
	}
	e := i>>latSubBits - 1
	m := i&(1<<latSubBits-1) + 1<<latSubBits
	return time.Duration((m+1)<<e) * time.Microsecond
}

func (l *latencies) record(now time.Time, d time.Duration) {
	l.rotate(now.UnixNano())
	l.counts[l.cur.Load()][latBucket(d)].Add(1)
	if l.seen.Add(1)%16 == 0 || l.p95ns.Load() == 0 {
		l.recompute()
	}
}

// rotate starts a new half window when the current one is over, dropping
// the one before it (both after a quiet spell of a whole window). A sample
// recorded during the switch may be lost; the p95 does not need it.
func (l *latencies) rotate(t int64) {
	s := l.start.Load()
	if t-s < l.half {
		return
	}
	idle := t-s >= 2*l.half
	if !l.start.CompareAndSwap(s, t) {
		return // another goroutine rotates
	}
	next := l.cur.Load() ^ 1
	l.clear(next)
	if idle {
		l.clear(next ^ 1)
	}
	l.cur.Store(next)
	l.recompute()
}

func (l *latencies) clear(i uint32) {
	for b := range l.counts[i] {
		l.counts[i][b].Store(0)
	}
}

func (l *latencies) recompute() {
	var sum [latBuckets]uint64
	var total uint64
	for b := range sum {
		sum[b] = uint64(l.counts[0][b].Load()) + uint64(l.counts[1][b].Load())
		total += sum[b]
	}
	if total < max(l.minSamples, 1) {
		l.p95ns.Store(0)
		return
	}
	rank := (total*95 + 99) / 100 // ceil(0.95 × total)
	var seen uint64
	for b, n := range sum {
		if seen += n; seen >= rank {
			l.p95ns.Store(int64(latUpper(b)))
			return
		}
	}
}

// p95 returns the p95 of the window ending at now, or 0 when it holds too
// few samples (or none recent enough).
func (l *latencies) p95(now time.Time) time.Duration {
	if now.UnixNano()-l.start.Load() >= 2*l.half {
		return 0
	}
	return time.Duration(l.p95ns.Load())
}
