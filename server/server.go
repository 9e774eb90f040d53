// Package server runs Sluice services. One server serves any number of
// services on any number of listeners; every call passes through the same
// middleware chain before it reaches the handler.
//
//	s := server.New(server.WithMiddleware(logging))
//	echopb.RegisterEchoServiceServer(s, &echoImpl{})
//	ln, _ := net.Listen("tcp", "127.0.0.1:8080")
//	go s.Serve(ln)
//	...
//	s.GracefulStop(ctx)
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/internal/transport"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/observe/log"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

// ErrServerStopped is returned by Serve after Stop or GracefulStop.
var ErrServerStopped = errors.New("server: stopped")

// Server states.
const (
	stateNew int32 = iota
	stateServing
	stateDraining
	stateStopped
)

// Server serves registered services.
type Server struct {
	opts options

	mu        sync.Mutex
	services  map[string]*service  // by full name
	short     map[string]*service  // by short name; nil value: ambiguous
	byMethod  map[string][]*method // by method name, for frames without a service name
	descs     []*ServiceDesc       // in registration order
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	sniffing  map[net.Conn]struct{} // accepted, protocol not known yet
	monitor   *transport.Monitor
	started   bool
	// registered is what was announced in the registry, until withdrawn.
	registered *discovery.Instance

	// The other two protocols, built at the first Serve.
	grpc    *grpc.Server
	http    *http.Server
	grpcLn  *connQueue
	httpLn  *connQueue
	health  *health.Server
	reflect atomic.Pointer[reflectionpb.ServerReflectionServer]
	admin   net.Listener // WithAdminAddr's, opened at the first Serve (observe.go)

	state    atomic.Int32
	inflight atomic.Int64
	idle     chan struct{} // signalled when inflight drops to 0 while draining
	drainCh  chan struct{} // closed when GracefulStop or Stop begins
	drainOne sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup // accept loops and connection readers
}

type service struct {
	name    string
	methods map[string]*method
}

type method struct {
	service  string
	name     string
	newReq   func() any
	endpoint endpoint.Endpoint
}

// New returns a Server configured by opts.
func New(opts ...Option) *Server {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	o.logger = slog.New(log.Handler(o.logger.Handler()))
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:      o,
		services:  map[string]*service{},
		short:     map[string]*service{},
		byMethod:  map[string][]*method{},
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
		sniffing:  map[net.Conn]struct{}{},
		health:    health.NewServer(),
		idle:      make(chan struct{}, 1),
		drainCh:   make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
	}
	// Until Serve, health says NOT_SERVING.
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	s.RegisterService(healthDesc(s.health), nil)
	if o.reflection {
		s.RegisterService(reflectionDesc(func() reflectionpb.ServerReflectionServer { return *s.reflect.Load() }), nil)
	}
	return s
}

// RegisterService registers impl for desc. It panics when impl does not
// implement desc.HandlerType, when the service is already registered, or
// after Serve has been called, as gRPC does: these are programming errors.
func (s *Server) RegisterService(desc *ServiceDesc, impl any) {
	if desc.HandlerType != nil {
		ht := reflect.TypeOf(desc.HandlerType).Elem()
		if it := reflect.TypeOf(impl); it == nil || !it.Implements(ht) {
			panic(fmt.Sprintf("server: RegisterService: %T does not implement %v", impl, ht))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		panic("server: RegisterService after Serve")
	}
	if _, dup := s.services[desc.ServiceName]; dup {
		panic("server: service " + desc.ServiceName + " registered twice")
	}
	svc := &service{name: desc.ServiceName, methods: map[string]*method{}}
	chain := endpoint.Chain(s.opts.middlewares...)
	for i := range desc.Methods {
		md := &desc.Methods[i]
		handler := md.Handler
		final := func(ctx context.Context, req, resp any) (err error) {
			// A handler's panic is logged here, with the context the
			// handler had (its span's trace); run recovers the
			// middlewares' own.
			defer func() {
				if r := recover(); r != nil {
					err = s.panicked(ctx, desc.ServiceName, md.MethodName, r)
				}
			}()
			out, err := handler(impl, ctx, req)
			if r, ok := resp.(*endpoint.Reply); ok {
				r.Msg = out
			}
			return err
		}
		m := &method{service: desc.ServiceName, name: md.MethodName, newReq: md.NewRequest, endpoint: chain(final)}
		svc.methods[md.MethodName] = m
		s.byMethod[md.MethodName] = append(s.byMethod[md.MethodName], m)
	}
	s.services[desc.ServiceName] = svc
	s.descs = append(s.descs, desc)
	if desc.ServiceName != healthService && desc.ServiceName != reflectionService {
		s.health.SetServingStatus(desc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	short := desc.ServiceName[strings.LastIndexByte(desc.ServiceName, '.')+1:]
	if _, taken := s.short[short]; taken {
		s.short[short] = nil
	} else {
		s.short[short] = svc
	}
}

// lookup finds the method a frame names. service may be empty (Kitex
// clients send none by default), short ("EchoService") or full.
func lookup[T string | []byte](s *Server, svcName, methodName T) (*method, error) {
	if len(svcName) > 0 {
		svc := s.services[string(svcName)]
		if svc == nil {
			var ok bool
			if svc, ok = s.short[string(svcName)]; ok && svc == nil {
				return nil, status.Errorf(codes.Unimplemented, "server: service name %q is ambiguous; send the full name", svcName)
			}
		}
		if svc == nil {
			return nil, status.Errorf(codes.Unimplemented, "server: unknown service %s", svcName)
		}
		if m := svc.methods[string(methodName)]; m != nil {
			return m, nil
		}
		return nil, status.Errorf(codes.Unimplemented, "server: unknown method %s for service %s", methodName, svc.name)
	}
	ms := s.byMethod[string(methodName)]
	switch len(ms) {
	case 1:
		return ms[0], nil
	case 0:
		return nil, status.Errorf(codes.Unimplemented, "server: unknown method %s", methodName)
	}
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.service
	}
	sort.Strings(names)
	return nil, status.Errorf(codes.Unimplemented, "server: method %s is ambiguous without a service name; candidates: %s", methodName, strings.Join(names, ", "))
}

// Serve accepts connections on ln until Stop or GracefulStop, and returns
// ErrServerStopped then. Serve may be called for several listeners.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.state.Load() >= stateDraining {
		s.mu.Unlock()
		ln.Close()
		return ErrServerStopped
	}
	if !s.started {
		if err := s.startAdmin(); err != nil {
			s.mu.Unlock()
			ln.Close()
			return err
		}
		s.started = true
		s.monitor = transport.NewMonitor(s.opts.handOffTick)
		s.startProtocols(ln.Addr())
	}
	register := false
	if s.state.CompareAndSwap(stateNew, stateServing) {
		s.health.Resume() // every registered service: SERVING
		register = s.opts.registry != nil
	}
	s.listeners[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	if register {
		if err := s.register(ln.Addr()); err != nil {
			s.opts.logger.Error("server: registering", "service", s.opts.instance.Service, "err", err)
		}
	}

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.state.Load() >= stateDraining {
				return ErrServerStopped
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTemporary) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			s.mu.Lock()
			delete(s.listeners, ln)
			s.mu.Unlock()
			return fmt.Errorf("server: accept on %v: %w", ln.Addr(), err)
		}
		backoff = 0
		s.sniff(nc)
	}
}

// sniff finds out what a new connection speaks and hands it to the
// native, gRPC or HTTP server; garbage closes the connection.
func (s *Server) sniff(nc net.Conn) {
	s.mu.Lock()
	if s.state.Load() >= stateStopped {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.sniffing[nc] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		p, c, err := transport.Sniff(nc, s.opts.sniff)
		s.mu.Lock()
		delete(s.sniffing, nc)
		stopped := s.state.Load() >= stateStopped
		s.mu.Unlock()
		switch {
		case stopped:
			nc.Close()
		case err != nil:
			s.opts.logger.Warn("server: closing connection", "peer", nc.RemoteAddr().String(), "err", err)
			nc.Close()
		case p == transport.Native:
			s.serveConn(c)
		case p == transport.GRPC:
			s.grpcLn.deliver(c)
		default:
			s.httpLn.deliver(c)
		}
	}()
}

// errTemporary marks accept errors worth retrying.
var errTemporary = errors.New("temporary")

func (s *Server) serveConn(nc net.Conn) {
	c := newConn(s, nc)
	s.mu.Lock()
	if s.state.Load() >= stateStopped {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.monitor.Add(&c.inline)
	go c.readLoop()
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	if s.monitor != nil {
		s.monitor.Remove(&c.inline)
	}
}

// callStarted and callDone count calls in flight for GracefulStop.
func (s *Server) callStarted() { s.inflight.Add(1) }

func (s *Server) callDone() {
	if s.inflight.Add(-1) == 0 && s.state.Load() == stateDraining {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
}

// draining reports whether replies should ask clients to move off their connection.
func (s *Server) draining() bool { return s.state.Load() == stateDraining }

// Stop closes every listener and connection at once. Calls in flight have
// their contexts cancelled; their callers see Unavailable.
func (s *Server) Stop() {
	s.state.Store(stateStopped)
	s.deregister()
	s.startDrain()
	s.mu.Lock()
	for ln := range s.listeners {
		ln.Close()
	}
	s.listeners = map[net.Listener]struct{}{}
	for c := range s.conns {
		c.close()
	}
	for nc := range s.sniffing {
		nc.Close()
	}
	started := s.started
	s.mu.Unlock()
	s.cancel()
	if started {
		s.grpcLn.Close()
		s.httpLn.Close()
		s.grpc.Stop()
		s.http.Close()
	}
	s.wg.Wait()
	s.mu.Lock()
	if s.monitor != nil {
		s.monitor.Close()
		s.monitor = nil
	}
	s.mu.Unlock()
}

// GracefulStop stops accepting connections, lets calls in flight finish
// (replies carry a hint that tells Sluice and Kitex clients to stop using the
// connection), then closes everything. If ctx ends first it stops hard and
// returns ctx's error.
func (s *Server) GracefulStop(ctx context.Context) error {
	if !s.state.CompareAndSwap(stateServing, stateDraining) && !s.state.CompareAndSwap(stateNew, stateDraining) {
		if s.state.Load() == stateStopped {
			return nil
		}
	}
	if s.deregister() && s.opts.regGrace > 0 {
		// Let clients hear of it before the listeners close.
		select {
		case <-time.After(s.opts.regGrace):
		case <-ctx.Done():
		}
	}
	s.startDrain()
	s.mu.Lock()
	for ln := range s.listeners {
		ln.Close()
	}
	s.listeners = map[net.Listener]struct{}{}
	started := s.started
	s.mu.Unlock()
	if started {
		// gRPC sends GOAWAY and waits for its streams; HTTP closes idle
		// connections and waits for active ones. Both stop hard if ctx ends.
		s.grpcLn.Close()
		s.httpLn.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.grpc.GracefulStop()
		}()
		s.http.Shutdown(ctx)
		select {
		case <-done:
		case <-ctx.Done():
			s.grpc.Stop()
			<-done
		}
	}
	var err error
	for s.inflight.Load() > 0 {
		select {
		case <-s.idle:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			break
		}
	}
	if err == nil {
		// Every native reply is in its connection's writer; some may be
		// held for coalescing. Send them before closing.
		s.mu.Lock()
		for c := range s.conns {
			c.w.Flush()
		}
		s.mu.Unlock()
	}
	s.Stop()
	return err
}

// register announces the server in its registry.
func (s *Server) register(addr net.Addr) error {
	in := s.opts.instance
	if in.Service == "" {
		return errors.New("server: WithRegistry needs an Instance with a Service name")
	}
	if in.Addr == "" {
		in.Addr = addr.String()
	}
	s.mu.Lock()
	s.registered = &in
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	return s.opts.registry.Register(ctx, in)
}

// deregister withdraws the registration, once; it reports whether there
// was one.
func (s *Server) deregister() bool {
	s.mu.Lock()
	in := s.registered
	s.registered = nil
	s.mu.Unlock()
	if in == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.opts.registry.Deregister(ctx, *in); err != nil {
		s.opts.logger.Warn("server: deregistering", "service", in.Service, "addr", in.Addr, "err", err)
	}
	return true
}

// startDrain turns health to NOT_SERVING and ends health watches.
func (s *Server) startDrain() {
	s.drainOne.Do(func() {
		s.health.Shutdown()
		close(s.drainCh)
	})
}

// SetResponseMetadata adds md to the metadata the server sends back with
// the reply of the call ctx belongs to. It fails outside a server call.
func SetResponseMetadata(ctx context.Context, md metadata.MD) error {
	info := callinfo.FromContext(ctx)
	if info == nil || info.Side != callinfo.Server {
		return errors.New("server: SetResponseMetadata called outside a server call")
	}
	if info.ResponseMetadata == nil {
		info.ResponseMetadata = metadata.MD{}
	}
	for k, vs := range md {
		info.ResponseMetadata.Append(k, vs...)
	}
	return nil
}
