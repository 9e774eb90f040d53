// Package client calls Sluice (and Kitex) services over the native
// protocol. A Client resolves its target into instances, balances calls
// over them, keeps a small pool of multiplexed connections per instance,
// and runs every call through its middleware chain.
//
//	c, err := client.New("127.0.0.1:8080,127.0.0.1:8081")
//	if err != nil { ... }
//	defer c.Close()
//	echo := echopb.NewEchoServiceClient(c)
//	resp, err := echo.Echo(ctx, &echopb.EchoRequest{Message: "hi"})
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/breaker"
	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/discovery/etcd"
	"github.com/sluicerpc/sluice/discovery/static"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/internal/transport"
	"github.com/sluicerpc/sluice/observe/trace"
	"github.com/sluicerpc/sluice/retry"
	"github.com/sluicerpc/sluice/route"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = status.Err(codes.Canceled, "client: closed")

// Client is a connection to one service. It is safe for concurrent use.
type Client struct {
	opts    options
	target  string
	service string // the name handed to the resolver
	ep      endpoint.Endpoint
	picker  atomic.Pointer[balancer.Picker]
	watch   io.Closer
	// ownResolver is a resolver New made (for etcd:/// targets), closed with the client.
	ownResolver io.Closer
	router      *router // WithRoutes; nil without route rules

	// pools maps addresses to connection pools. Calls read it without a
	// lock; changes copy it under mu.
	pools  atomic.Pointer[map[string]*pool]
	mu     sync.Mutex
	closed atomic.Bool
	done   chan struct{} // closed by Close
}

// New returns a Client for target:
//
//   - "host:port" or "host:port,host:port": a fixed list;
//   - "static:///host:port,host:port": the same;
//   - "etcd:///name": the instances registered in etcd under name, found at
//     WithEtcdEndpoints or $SLUICE_ETCD (default 127.0.0.1:2379);
//   - "scheme:///name" with WithResolver: name is resolved by the resolver.
//
// New does not dial; connections open on first use.
func New(target string, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	c := &Client{opts: o, target: target, done: make(chan struct{})}
	c.pools.Store(&map[string]*pool{})
	scheme, rest, hasScheme := strings.Cut(target, ":///")
	switch {
	case o.resolver != nil:
		c.service = rest
		if !hasScheme {
			c.service = target
		}
	case !hasScheme || scheme == "static":
		addrs := target
		if hasScheme {
			addrs = rest
		}
		r := static.Parse(addrs)
		o.resolver, c.service = r, addrs
	case scheme == "etcd":
		// etcd:///service: endpoints from WithEtcdEndpoints, else $SLUICE_ETCD.
		r, err := etcd.NewResolver(etcd.Config{Endpoints: etcd.Endpoints(strings.Join(o.etcdEndpoints, ","))})
		if err != nil {
			return nil, fmt.Errorf("client: target %q: %w", target, err)
		}
		o.resolver, c.service, c.ownResolver = r, rest, r
	default:
		return nil, fmt.Errorf("client: target %q: no resolver for scheme %q (use client.WithResolver)", target, scheme)
	}
	if c.service == "" {
		return nil, fmt.Errorf("client: empty target %q", target)
	}
	mws := o.middlewares
	if t := o.tracing; t != nil {
		mws = append([]endpoint.Middleware{t.Client()}, mws...)
	}
	if m := o.metrics; m != nil {
		mws = append([]endpoint.Middleware{m.Client()}, mws...)
		if !o.balancerSet {
			c.opts.balancer = defaultBalancerHooked(func(addr string, _ time.Duration) { m.Ejection(addr) })
		}
	}
	if o.policy != nil {
		mws = append(mws[:len(mws):len(mws)], o.policy.Client())
	}
	c.ep = endpoint.Chain(mws...)(c.send)
	if o.routes != nil {
		c.router = newRouter(c, o.routes)
	}
	w, err := o.resolver.Resolve(context.Background(), c.service, c.update)
	if err != nil {
		if c.ownResolver != nil {
			c.ownResolver.Close()
		}
		return nil, fmt.Errorf("client: resolving %q: %w", target, err)
	}
	c.watch = w
	return c, nil
}

// update installs a new instance snapshot.
func (c *Client) update(ins []discovery.Instance) {
	if c.router != nil {
		c.router.update(ins)
	}
	p := c.opts.balancer.Build(ins)
	c.picker.Store(&p)
	// Drop pools of instances that left.
	keep := make(map[string]bool, len(ins))
	for _, in := range ins {
		keep[in.Addr] = true
	}
	c.mu.Lock()
	old := *c.pools.Load()
	next := make(map[string]*pool, len(old))
	for addr, pl := range old {
		if keep[addr] {
			next[addr] = pl
		} else {
			pl.close()
		}
	}
	c.pools.Store(&next)
	c.mu.Unlock()
}

// clientCall is the one allocation a call makes besides its messages: the
// context with the call info inline.
type clientCall struct {
	ctx  callinfo.Carrier
	opts callOptions
}

// tracedCall is a clientCall with room for its span, which a client with
// a Tracing (WithTracing) makes, so that the span costs no allocation of
// its own.
type tracedCall struct {
	clientCall
	span trace.ClientRoom
}

// Invoke implements Invoker: it calls method ("/pkg.Service/Method") with
// req and decodes the reply into resp.
func (c *Client) Invoke(ctx context.Context, method string, req, resp any, opts ...CallOption) error {
	service, name, err := splitMethod(method)
	if err != nil {
		return err
	}
	var cl *clientCall
	if c.opts.tracing != nil {
		tc := &tracedCall{}
		tc.ctx.Room = &tc.span
		cl = &tc.clientCall
	} else {
		cl = &clientCall{}
	}
	co := &cl.opts
	for _, o := range opts {
		o.apply(co)
	}
	cl.ctx.Context = ctx
	info := &cl.ctx.Info
	info.Side = callinfo.Client
	info.Service = service
	info.Method = name
	info.Protocol = c.opts.protocol.String()
	info.FullMethod = method
	info.Caller = c.opts.caller
	info.Attempt = 1
	info.Start = time.Now()
	if d, ok := ctx.Deadline(); ok {
		info.Deadline = d
	}
	err = c.ep(&cl.ctx, req, resp)
	if co.responseMD != nil {
		*co.responseMD = info.ResponseMetadata
	}
	return err
}

// splitMethod splits "/pkg.Service/Method" without allocating.
func splitMethod(m string) (service, method string, err error) {
	if len(m) > 0 && m[0] == '/' {
		m = m[1:]
	}
	i := strings.LastIndexByte(m, '/')
	if i <= 0 || i == len(m)-1 {
		return "", "", status.Errorf(codes.InvalidArgument, "client: malformed method name %q, want /pkg.Service/Method", m)
	}
	return m[:i], m[i+1:], nil
}

// send is the innermost endpoint: pick an instance, take a connection, call.
func (c *Client) send(ctx context.Context, req, resp any) error {
	info := callinfo.FromContext(ctx)
	if info == nil {
		return status.Err(codes.Internal, "client: call context without call info")
	}
	if ctx.Err() != nil { // already over: send nothing
		return transport.ContextError(ctx, info)
	}
	pp := c.picker.Load()
	if pp == nil {
		return status.Errorf(codes.Unavailable, "client: no instances resolved for %s yet", c.target)
	}
	p := *pp
	if r := c.router; r != nil {
		d := r.decide(ctx, info)
		info.Rule, info.Route, info.Subset = d.Rule, d.Route, d.Subset.Name
		// The call's draws hold for every attempt: its delay and its
		// mirrored copy once, with the first attempt; its abort on each.
		first := info.Attempt <= 1
		if d.Delay > 0 && first {
			if err := retry.Sleep(ctx, d.Delay); err != nil {
				return transport.ContextError(ctx, info)
			}
		}
		if d.Abort != nil {
			return d.Abort
		}
		if p = r.picker(d); p == nil {
			return route.NoInstance(info.Service, d)
		}
		if first {
			r.mirror(ctx, info, d, req, resp)
		}
	}
	var guards *breaker.Set
	if c.opts.policy != nil {
		guards = c.opts.policy.Instances(info.Service)
	}
	return c.call(ctx, info, p, guards, req, resp)
}

// call sends one attempt to an instance p picks, under the instance's
// breaker from guards when not nil.
func (c *Client) call(ctx context.Context, info *callinfo.Info, p balancer.Picker, guards *breaker.Set, req, resp any) error {
	res, guard, tok, err := c.pick(ctx, info, p, guards)
	if err != nil {
		return err
	}
	addr := res.Instance.Addr
	info.Peer = addr
	if info.OnPick != nil {
		info.OnPick(addr)
	}
	var start time.Time
	if res.Done != nil || guard != nil {
		start = time.Now()
	}
	cc, err := c.conn(ctx, info, addr)
	if err == nil {
		err = cc.Call(ctx, info, req, resp)
	}
	if res.Done != nil || guard != nil {
		end := time.Now()
		info.End = end
		if res.Done != nil {
			res.Done(balancer.DoneInfo{Err: err, Latency: end.Sub(start), End: end})
		}
		if guard != nil {
			guard.RecordAt(tok, err, end.Sub(start), end)
		}
	}
	return err
}

// pick asks the picker for an instance that earlier attempts of the call
// did not fail on and whose breaker (from guards, when not nil) lets the
// call through, within a few tries. When every try lands on an open
// breaker, the call fails with that breaker's error.
func (c *Client) pick(ctx context.Context, info *callinfo.Info, p balancer.Picker, guards *breaker.Set) (balancer.PickResult, *breaker.Breaker, breaker.Token, error) {
	const tries = 4
	var rejected error
	for try := 0; ; try++ {
		res, err := p.Pick(balancer.PickInfo{Ctx: ctx, Service: info.Service, Method: info.Method})
		if err != nil {
			return res, nil, breaker.Token{}, err
		}
		last := try == tries-1
		if !last && avoided(info.Avoid, res.Instance.Addr) {
			drop(res)
			continue
		}
		if guards == nil {
			return res, nil, breaker.Token{}, nil
		}
		b := guards.Get(res.Instance.Addr)
		tok, err := b.Allow()
		if err == nil {
			return res, b, tok, nil
		}
		drop(res)
		rejected = err
		if last {
			return res, nil, breaker.Token{}, rejected
		}
	}
}

// drop ends a pick the client does not use.
func drop(res balancer.PickResult) {
	if res.Done != nil {
		res.Done(balancer.DoneInfo{Err: errNotUsed})
	}
}

// errNotUsed ends a pick the client dropped without calling: it counts
// neither as a success nor as an instance failure (Canceled).
var errNotUsed = status.Err(codes.Canceled, "client: pick not used")

func avoided(avoid []string, addr string) bool {
	for _, a := range avoid {
		if a == addr {
			return true
		}
	}
	return false
}

// conn returns a usable connection to addr, dialing if needed.
func (c *Client) conn(ctx context.Context, info *callinfo.Info, addr string) (conn, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	pl := (*c.pools.Load())[addr]
	if pl == nil {
		c.mu.Lock()
		if c.closed.Load() {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		old := *c.pools.Load()
		if pl = old[addr]; pl == nil {
			pl = newPool(c, addr)
			next := make(map[string]*pool, len(old)+1)
			for a, p := range old {
				next[a] = p
			}
			next[addr] = pl
			c.pools.Store(&next)
		}
		c.mu.Unlock()
	}
	return pl.get(ctx, info)
}

// Close closes every connection and stops watching the target. Calls in
// flight fail with Unavailable.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		return nil
	}
	c.closed.Store(true)
	close(c.done)
	pools := *c.pools.Load()
	c.pools.Store(&map[string]*pool{})
	c.mu.Unlock()
	for _, pl := range pools {
		pl.close()
	}
	if c.router != nil {
		c.router.close()
	}
	err := c.watch.Close()
	if c.ownResolver != nil {
		if cerr := c.ownResolver.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// pool keeps up to connsPerAddr connections to one address and spreads
// calls over them.
type pool struct {
	c      *Client
	addr   string
	next   atomic.Uint32
	slots  []slot
	closed atomic.Bool
}

type slot struct {
	cc     atomic.Pointer[conn]
	dialMu sync.Mutex
}

// conn is one client connection, whatever its protocol.
type conn interface {
	// Call performs the call info describes; ctx carries the outgoing
	// metadata and cancellation.
	Call(ctx context.Context, info *callinfo.Info, req, resp any) error
	// Usable reports whether new calls may use the connection.
	Usable() bool
	// Idle reports whether no call is in flight.
	Idle() bool
	// Done is closed once the connection has failed or closed.
	Done() <-chan struct{}
	Close() error
}

func newPool(c *Client, addr string) *pool {
	n := c.opts.connsPerAddr
	if c.opts.protocol != Native {
		n = 1 // HTTP/2 multiplexes on its own
	}
	return &pool{c: c, addr: addr, slots: make([]slot, n)}
}

func (p *pool) get(ctx context.Context, info *callinfo.Info) (conn, error) {
	s := &p.slots[p.next.Add(1)%uint32(len(p.slots))]
	if cc := s.cc.Load(); cc != nil && (*cc).Usable() {
		return *cc, nil
	}
	s.dialMu.Lock()
	defer s.dialMu.Unlock()
	var old conn
	if o := s.cc.Load(); o != nil {
		if old = *o; old.Usable() {
			return old, nil
		}
	}
	cc, err := p.dial(ctx, info)
	if err != nil {
		return nil, err
	}
	s.cc.Store(&cc)
	if p.closed.Load() { // the client closed, or the instance left, while we dialed
		cc.Close()
		if p.c.closed.Load() {
			return nil, ErrClosed
		}
		return nil, status.Errorf(codes.Unavailable, "client: instance %s left while dialing for %s.%s", p.addr, info.Service, info.Method)
	}
	if old != nil {
		go closeWhenIdle(old, p.c.done)
	}
	return cc, nil
}

// closeWhenIdle closes a connection the server asked us to leave once its
// calls are done, after a minute at most, or when the client closes.
func closeWhenIdle(cc conn, clientDone <-chan struct{}) {
	defer cc.Close()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	deadline := time.Now().Add(time.Minute)
	for !cc.Idle() && time.Now().Before(deadline) {
		select {
		case <-cc.Done():
			return
		case <-clientDone:
			return
		case <-t.C:
		}
	}
}

func (p *pool) dial(ctx context.Context, info *callinfo.Info) (conn, error) {
	switch p.c.opts.protocol {
	case GRPC:
		return dialGRPC(p.addr, p.c.opts)
	case Connect:
		return dialConnect(p.addr, p.c.opts)
	}
	timeout := p.c.opts.connectTimeout
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var nc net.Conn
	var err error
	if dial := p.c.opts.dialer; dial != nil {
		nc, err = dial(dctx, p.addr)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(dctx, "tcp", p.addr)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, transport.ContextError(ctx, info)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, status.Wrap(codes.Unavailable, fmt.Sprintf("client: connect timeout of %v dialing %s for %s.%s", timeout, p.addr, info.Service, info.Method), err)
		}
		return nil, status.Wrap(codes.Unavailable, fmt.Sprintf("client: dialing %s for %s.%s: %v", p.addr, info.Service, info.Method, err), err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return transport.NewClientConn(nc, transport.ClientConfig{
		Codec:            p.c.opts.codec,
		MaxFrameSize:     p.c.opts.maxFrameSize,
		ShortServiceName: p.c.opts.shortService,
	}), nil
}

func (p *pool) close() {
	p.closed.Store(true)
	for i := range p.slots {
		if cc := p.slots[i].cc.Load(); cc != nil {
			(*cc).Close()
		}
	}
}
