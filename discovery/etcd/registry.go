package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/sluicerpc/sluice/discovery"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Registry registers instances in etcd, each under its own lease, and keeps
// the leases alive. It implements discovery.Registry and io.Closer, and is
// safe for concurrent use.
type Registry struct {
	cfg Config
	cli *clientv3.Client
	own bool // cli was dialed by NewRegistry
	ttl int64

	ctx    context.Context // ends at Close: aborts requests in flight
	cancel context.CancelFunc
	op     sync.Mutex // serializes Register, Deregister and Close

	mu     sync.Mutex
	regs   map[string]*registration // by key
	closed bool
}

// registration is one registered instance and the goroutine keeping it.
type registration struct {
	key    string
	ctx    context.Context // ends at Deregister or Close
	cancel context.CancelFunc
	done   chan struct{} // closed when keep returns

	mu    sync.Mutex // held while writing the key; guards val and lease
	val   string
	lease clientv3.LeaseID // 0 while none is held
}

// NewRegistry returns a Registry configured by cfg. It does not wait for
// etcd to be reachable.
func NewRegistry(cfg Config) (*Registry, error) {
	cfg, err := cfg.build()
	if err != nil {
		return nil, err
	}
	cli, own, err := cfg.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Registry{
		cfg:    cfg,
		cli:    cli,
		own:    own,
		ttl:    int64(cfg.TTL.Seconds()),
		ctx:    ctx,
		cancel: cancel,
		regs:   map[string]*registration{},
	}, nil
}

// requestCtx bounds a Register or Deregister: by ctx, RequestTimeout, the
// client's life and Close.
func (r *Registry) requestCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := bound(ctx, r.cli, r.cfg.RequestTimeout)
	stop := context.AfterFunc(r.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// Register implements discovery.Registry: it writes in under a new lease
// and keeps the lease alive, registering again whenever the lease is lost,
// until Deregister or Close. It fails when etcd cannot be reached within
// ctx and RequestTimeout; then nothing stays registered.
//
// Registering an instance again (same Service and Addr) updates its weight
// and labels under the same lease; if that fails, the previous registration
// stays as it was.
func (r *Registry) Register(ctx context.Context, in discovery.Instance) error {
	if err := checkInstance(in); err != nil {
		return err
	}
	key := servicePrefix(r.cfg.Prefix, in.Service) + in.Addr
	val := encode(in)

	r.op.Lock()
	defer r.op.Unlock()
	r.mu.Lock()
	closed, reg := r.closed, r.regs[key]
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	rctx, cancel := r.requestCtx(ctx)
	defer cancel()
	if reg != nil {
		return r.update(rctx, reg, val)
	}

	reg = &registration{key: key, val: val, done: make(chan struct{})}
	reg.ctx, reg.cancel = context.WithCancel(context.Background())
	ka, err := r.grant(rctx, reg)
	if err != nil {
		reg.cancel()
		return fmt.Errorf("etcd: registering %s at %s: %w", in.Service, in.Addr, err)
	}
	r.mu.Lock()
	if r.closed { // cannot happen while we hold r.op; kept for safety
		r.mu.Unlock()
		reg.cancel()
		return ErrClosed
	}
	r.regs[key] = reg
	r.mu.Unlock()
	go r.keep(reg, ka)
	return nil
}

// update writes a new value for reg under its current lease.
func (r *Registry) update(ctx context.Context, reg *registration, val string) error {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.val == val {
		return nil
	}
	if reg.lease == 0 {
		// Between leases: keep writes val when it has a new one.
		reg.val = val
		return nil
	}
	_, err := r.cli.Put(ctx, reg.key, val, clientv3.WithLease(reg.lease))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		// The lease is gone and keep is about to notice: it writes val
		// under the next lease.
		reg.val = val
		return nil
	}
	if err != nil {
		return fmt.Errorf("etcd: updating %s: %w", reg.key, err)
	}
	reg.val = val
	return nil
}

// grant writes reg under a new lease and starts keeping the lease alive.
func (r *Registry) grant(ctx context.Context, reg *registration) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	g, err := r.cli.Grant(ctx, r.ttl)
	if err != nil {
		return nil, err
	}
	reg.mu.Lock()
	_, err = r.cli.Put(ctx, reg.key, reg.val, clientv3.WithLease(g.ID))
	if err == nil {
		reg.lease = g.ID
	}
	reg.mu.Unlock()
	if err != nil {
		r.revoke(ctx, g.ID) // else it expires on its own, holding no key
		return nil, err
	}
	ka, err := r.cli.KeepAlive(reg.ctx, g.ID) // fails only on a closed client
	if err != nil {
		reg.mu.Lock()
		reg.lease = 0
		reg.mu.Unlock()
		r.revoke(ctx, g.ID)
		return nil, err
	}
	return ka, nil
}

// revoke revokes a lease, best effort.
func (r *Registry) revoke(ctx context.Context, id clientv3.LeaseID) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	_, err := r.cli.Revoke(ctx, id)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil
	}
	return err
}

// keep reads lease keep-alive responses until the lease is lost, then
// registers reg again under a new lease, until reg ends or the client is
// closed.
func (r *Registry) keep(reg *registration, ka <-chan *clientv3.LeaseKeepAliveResponse) {
	defer close(reg.done)
	log := r.cfg.Logger.With("key", reg.key)
	var backoff retry
	for {
		for range ka { // closes when the lease is lost, reg ends or the client closes
		}
		if reg.ctx.Err() != nil || r.cli.Ctx().Err() != nil {
			return
		}
		reg.mu.Lock()
		old := reg.lease
		reg.lease = 0
		reg.mu.Unlock()
		log.Warn("etcd: lease lost; registering again", "lease", fmt.Sprintf("%x", int64(old)))
		for {
			if !sleep(reg.ctx, backoff.next()) {
				return
			}
			ctx, cancel := bound(reg.ctx, r.cli, r.cfg.RequestTimeout)
			next, err := r.grant(ctx, reg)
			if err == nil && old != 0 {
				// The old lease may live on in etcd (the keep-alive gave
				// up, etcd did not); it holds the key no more.
				r.revoke(ctx, old)
			}
			cancel()
			if err == nil {
				ka = next
				backoff.reset()
				log.Info("etcd: registered again")
				break
			}
			if reg.ctx.Err() != nil || r.cli.Ctx().Err() != nil {
				return
			}
			log.Warn("etcd: registering again failed", slog.Any("err", err))
		}
	}
}

// Deregister implements discovery.Registry: it stops keeping in's
// registration alive, deletes its key and revokes its lease. Deregistering
// an instance this Registry did not register deletes its key.
func (r *Registry) Deregister(ctx context.Context, in discovery.Instance) error {
	if err := checkInstance(in); err != nil {
		return err
	}
	key := servicePrefix(r.cfg.Prefix, in.Service) + in.Addr
	r.op.Lock()
	defer r.op.Unlock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	reg := r.regs[key]
	delete(r.regs, key)
	r.mu.Unlock()
	rctx, cancel := r.requestCtx(ctx)
	defer cancel()
	if err := r.remove(rctx, key, reg); err != nil {
		return fmt.Errorf("etcd: deregistering %s at %s: %w", in.Service, in.Addr, err)
	}
	return nil
}

// remove stops reg (when not nil) and deletes key.
func (r *Registry) remove(ctx context.Context, key string, reg *registration) error {
	var lease clientv3.LeaseID
	if reg != nil {
		reg.cancel()
		<-reg.done
		lease = reg.lease
	}
	_, err := r.cli.Delete(ctx, key)
	if lease != 0 {
		err = errors.Join(err, r.revoke(ctx, lease))
	}
	return err
}

// Close deregisters every instance (waiting at most RequestTimeout for
// etcd), stops every goroutine and, when NewRegistry dialed it, closes the
// etcd client. Instances it could not deregister expire after TTL.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel() // aborts a Register or Deregister in flight
	r.op.Lock()
	defer r.op.Unlock()
	r.mu.Lock()
	regs := r.regs
	r.regs = nil
	r.mu.Unlock()

	ctx, cancel := bound(context.Background(), r.cli, r.cfg.RequestTimeout)
	defer cancel()
	var errs []error
	for key, reg := range regs {
		if err := r.remove(ctx, key, reg); err != nil {
			errs = append(errs, fmt.Errorf("etcd: deregistering %s: %w", key, err))
		}
	}
	if r.own {
		errs = append(errs, r.cli.Close())
	}
	return errors.Join(errs...)
}
