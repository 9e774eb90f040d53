package server

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"

	sproto "github.com/sluicerpc/sluice/codec/proto"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/protocol/ttheader"
	"google.golang.org/grpc"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
)

// startProtocols builds, once, the gRPC server (grpc-go's own HTTP/2
// transport, fed the connections the sniffer hands it) and the HTTP server
// (Connect over HTTP/1.1 and h2c). Every registered service is served on
// both, through the same middleware chain as the native protocol.
func (s *Server) startProtocols(addr net.Addr) {
	s.grpcLn = newConnQueue(addr)
	s.httpLn = newConnQueue(addr)

	gopts := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.opts.maxFrameSize),
	}, s.opts.grpcOptions...)
	gs := grpc.NewServer(gopts...)
	for _, d := range s.descs {
		if d.ServiceName == reflectionService {
			continue // gRPC gets the standard streaming reflection below
		}
		gd := grpc.ServiceDesc{ServiceName: d.ServiceName, HandlerType: (*any)(nil), Metadata: d.Metadata}
		svc := s.services[d.ServiceName]
		for _, md := range d.Methods {
			gd.Methods = append(gd.Methods, grpc.MethodDesc{MethodName: md.MethodName, Handler: s.grpcHandler(svc.methods[md.MethodName])})
		}
		if d.ServiceName == healthService {
			gd.Streams = append(gd.Streams, healthWatch(s.health, s.drainCh))
		}
		gs.RegisterService(&gd, nil)
	}
	if s.opts.reflection {
		reflection.Register(gs)
	}
	s.grpc = gs
	s.reflect.Store(newReflection(gs))

	mux := http.NewServeMux()
	mux.HandleFunc("/", s.serveConnect)
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	s.http = &http.Server{
		Handler:   mux,
		Protocols: protocols,
		ErrorLog:  slogAdapter(s.opts.logger),
		// Requests' contexts end when the server stops.
		BaseContext: func(net.Listener) context.Context { return s.ctx },
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		gs.Serve(s.grpcLn)
	}()
	go func() {
		defer s.wg.Done()
		s.http.Serve(s.httpLn)
	}()
}

// grpcHandler adapts a method to grpc-go: decode, fill the call info from
// the gRPC context (peer, metadata, deadline), run the chain, send the
// response metadata as headers.
func (s *Server) grpcHandler(m *method) func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
	return func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		req := m.newReq()
		if err := dec(req); err != nil {
			return nil, err // grpc-go's own Internal "error unmarshalling request"
		}
		addr := ""
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			addr = p.Addr.String()
		}
		cl := s.newCall(ctx, m, "grpc", addr)
		cl.ctx.Info.ReceivedBytes = sproto.Size(req)
		if md, ok := grpcmd.FromIncomingContext(ctx); ok {
			if v := md[ttheader.KeyAttempt]; len(v) > 0 {
				cl.ctx.Info.Attempt = atoiOr(v[0], 1)
			}
			if v := md[ttheader.KeyCaller]; len(v) > 0 {
				cl.ctx.Info.Caller = v[0]
			}
			cl.setIncomingSplit(userMetadata(md))
		}
		reply, err := s.run(cl, req)
		if rmd := cl.ctx.Info.ResponseMetadata; len(rmd) > 0 {
			grpc.SetHeader(ctx, grpcmd.MD(rmd))
		}
		if err == nil {
			s.replied(&cl.ctx.Info, sproto.Size(reply))
		}
		return reply, err
	}
}

// userMetadata drops, in place, what HTTP/2 and gRPC put in every request,
// so that a middleware sees the same metadata whichever protocol carried
// the call. md must be the caller's own copy (FromIncomingContext makes one).
func userMetadata(md grpcmd.MD) metadata.MD {
	for k := range md {
		if strings.HasPrefix(k, ":") || strings.HasPrefix(k, "grpc-") || k == "content-type" || k == "user-agent" || k == "te" || k == ttheader.KeyAttempt || k == ttheader.KeyCaller {
			delete(md, k)
		}
	}
	if len(md) == 0 {
		return nil
	}
	return metadata.MD(md)
}

// connQueue is a net.Listener whose connections come from the sniffer.
type connQueue struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// deliver hands c to the protocol server, or closes it once the queue is closed.
func (q *connQueue) deliver(c net.Conn) {
	select {
	case q.ch <- c:
	case <-q.done:
		c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }
