package client

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/route"
)

// router applies the route rules of a client: it decides each call's
// subset, lane, mirror and fault, and keeps one picker per target built
// from the current instances.
type router struct {
	c    *Client
	t    *route.Table
	salt uint64 // mixed into each call's draw

	mu      sync.Mutex                                       // serialises picker builds and resets
	ins     []discovery.Instance                             // the current snapshot
	pickers atomic.Pointer[map[route.Target]balancer.Picker] // built lazily, reset on change

	mirrors   chan mirrorCall // bounded; a full queue drops the copy
	startOnce sync.Once
	stopSub   func()
	dropped   atomic.Int64
	wg        sync.WaitGroup
}

// mirrorCall is a copy of a call on its way to a mirror subset.
type mirrorCall struct {
	ctx  context.Context // the caller's values, none of its cancellation
	info callinfo.Info
	d    route.Decision
	req  proto.Message
	resp proto.Message
}

// Mirror settings: how many copies may wait, how many are sent at once,
// and how long one may take.
const (
	mirrorQueue   = 1024
	mirrorWorkers = 2
	mirrorTimeout = 5 * time.Second
)

func newRouter(c *Client, t *route.Table) *router {
	r := &router{c: c, t: t, mirrors: make(chan mirrorCall, mirrorQueue), salt: rand.Uint64()}
	r.pickers.Store(&map[route.Target]balancer.Picker{})
	r.stopSub = t.Subscribe(r.reset)
	return r
}

// update installs a new instance snapshot.
func (r *router) update(ins []discovery.Instance) {
	r.mu.Lock()
	r.ins = ins
	r.mu.Unlock()
	r.reset()
}

// reset forgets the pickers: the instances or the rules changed.
func (r *router) reset() {
	r.mu.Lock()
	r.pickers.Store(&map[route.Target]balancer.Picker{})
	r.mu.Unlock()
}

// decide evaluates the rules for the call info describes. Every attempt
// of a call (retries, hedges) draws the same random number, so it makes
// the same weighted choice, mirror and fault draws as the first did, as
// long as the rules stay: a call is routed once, as in Envoy.
func (r *router) decide(ctx context.Context, info *callinfo.Info) route.Decision {
	return r.t.Decide(route.Input{
		Side:         callinfo.Client,
		Service:      info.Service,
		Method:       info.Method,
		Caller:       r.c.opts.caller,
		CallerLabels: r.c.opts.callerLabels,
		Metadata:     func(k string) (string, bool) { return metadata.OutgoingValue(ctx, k) },
		Baggage:      func(k string) (string, bool) { return metadata.BaggageValue(ctx, k) },
		Rand:         r.draw(info),
	})
}

// draw returns the call's random number: its Start, which all its
// attempts share, mixed with the router's salt (Decide mixes it again
// for each draw); a call without a Start gets a fresh one.
func (r *router) draw(info *callinfo.Info) uint64 {
	if info.Start.IsZero() {
		return rand.Uint64()
	}
	return uint64(info.Start.UnixNano()) ^ r.salt
}

// picker returns the picker over the instances d selects; nil when there
// are none.
func (r *router) picker(d route.Decision) balancer.Picker {
	tg := d.Target()
	if p, ok := (*r.pickers.Load())[tg]; ok {
		return p
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.pickers.Load()
	if p, ok := old[tg]; ok {
		return p
	}
	var p balancer.Picker
	if sel := route.Select(r.ins, d); len(sel) > 0 {
		p = r.c.opts.balancer.Build(sel)
	}
	next := make(map[route.Target]balancer.Picker, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[tg] = p
	r.pickers.Store(&next)
	return p
}

// mirror queues a copy of the call for d's mirror subset, unless the queue
// is full: a mirror never slows the caller down or fails its call.
func (r *router) mirror(ctx context.Context, info *callinfo.Info, d route.Decision, req, resp any) {
	m, ok := d.MirrorTarget()
	if !ok {
		return
	}
	rq, ok1 := req.(proto.Message)
	rs, ok2 := resp.(proto.Message)
	if !ok1 || !ok2 {
		return
	}
	r.startOnce.Do(r.start)
	mc := mirrorCall{
		ctx:  context.WithoutCancel(ctx),
		info: callinfo.Info{Side: callinfo.Client, Service: info.Service, Method: info.Method, FullMethod: info.FullMethod, Protocol: info.Protocol, Attempt: 1},
		d:    m,
		req:  proto.Clone(rq),
		resp: rs.ProtoReflect().New().Interface(),
	}
	select {
	case r.mirrors <- mc:
	default:
		r.dropped.Add(1)
	}
}

// start starts the mirror workers; they stop when the client closes.
func (r *router) start() {
	for i := 0; i < mirrorWorkers; i++ {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for {
				select {
				case <-r.c.done:
					return
				case mc := <-r.mirrors:
					r.send(mc)
				}
			}
		}()
	}
}

// send makes one mirrored call and discards its outcome.
func (r *router) send(mc mirrorCall) {
	p := r.picker(mc.d)
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(mc.ctx, mirrorTimeout)
	defer cancel()
	cl := &callinfo.Carrier{Context: ctx, Info: mc.info}
	cl.Info.Start = time.Now()
	cl.Info.Deadline, _ = ctx.Deadline()
	r.c.call(cl, &cl.Info, p, nil, mc.req, mc.resp)
}

// close stops following the rules and waits for the mirror workers (the
// client's done channel is closed already).
func (r *router) close() {
	r.stopSub()
	r.wg.Wait()
}
