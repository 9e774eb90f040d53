package etcd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sluicerpc/sluice/discovery"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// Resolver watches services in etcd. It implements discovery.Resolver and
// io.Closer, and is safe for concurrent use.
type Resolver struct {
	cfg Config
	cli *clientv3.Client
	own bool // cli was dialed by NewResolver

	mu      sync.Mutex
	watches map[*watch]struct{}
	closed  bool

	// beforeWatch, when set (by tests), runs before each etcd watch starts
	// from revision rev+1, on the goroutine that is going to watch.
	beforeWatch func(service string, rev int64)
}

// NewResolver returns a Resolver configured by cfg (TTL is not used). It
// does not wait for etcd to be reachable.
func NewResolver(cfg Config) (*Resolver, error) {
	cfg, err := cfg.build()
	if err != nil {
		return nil, err
	}
	cli, own, err := cfg.client()
	if err != nil {
		return nil, err
	}
	return &Resolver{cfg: cfg, cli: cli, own: own, watches: map[*watch]struct{}{}}, nil
}

var (
	// errWatchClosed says an etcd watch ended without saying why.
	errWatchClosed = errors.New("etcd: watch closed")
	// errReconnected says the etcd client reconnected a watch stream.
	errReconnected = errors.New("etcd: watch stream reconnected")
)

// Resolve implements discovery.Resolver. It lists service and, when that
// succeeds within ctx and RequestTimeout, calls update with the first
// snapshot before it returns. Then it watches the service until the
// returned Closer is closed, calling update whenever the set of instances
// changes; snapshots are sorted by Addr.
//
// If ctx ends before the first listing succeeds, Resolve fails. If only
// RequestTimeout passes (etcd is unreachable), Resolve returns without a
// snapshot and keeps trying in the background.
//
// update is called from one goroutine at a time and must not close the
// returned Closer.
func (r *Resolver) Resolve(ctx context.Context, service string, update func([]discovery.Instance)) (io.Closer, error) {
	if err := checkService(service); err != nil {
		return nil, err
	}
	if update == nil {
		return nil, errors.New("etcd: Resolve with a nil update func")
	}
	w := &watch{
		r:       r,
		service: service,
		prefix:  servicePrefix(r.cfg.Prefix, service),
		update:  update,
		log:     r.cfg.Logger.With("service", service),
		done:    make(chan struct{}),
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	r.watches[w] = struct{}{}
	r.mu.Unlock()

	lctx, cancel := bound(ctx, r.cli, r.cfg.RequestTimeout)
	stop := context.AfterFunc(w.ctx, cancel) // Close while listing
	rev, err := w.list(lctx)
	stop()
	cancel()
	if err != nil {
		if ctx.Err() != nil || w.ctx.Err() != nil {
			close(w.done)
			w.Close()
			return nil, fmt.Errorf("etcd: resolving %s: %w", service, err)
		}
		w.log.Warn("etcd: listing failed; retrying in the background", slog.Any("err", err))
		rev = 0
	}
	go w.run(rev)
	return w, nil
}

// Close stops every watch and, when NewResolver dialed it, closes the etcd
// client.
func (r *Resolver) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	ws := slices.Collect(maps.Keys(r.watches))
	r.mu.Unlock()
	for _, w := range ws {
		w.Close()
	}
	if r.own {
		return r.cli.Close()
	}
	return nil
}

// watch follows one service for one Resolve call.
type watch struct {
	r       *Resolver
	service string
	prefix  string
	update  func([]discovery.Instance)
	log     *slog.Logger

	ctx       context.Context // ends at Close
	cancel    context.CancelFunc
	done      chan struct{} // closed when run returns
	closeOnce sync.Once

	// Owned by the goroutine calling update.
	state map[string]discovery.Instance // by key
	last  []discovery.Instance          // a copy of the last snapshot handed over
	known bool                          // a snapshot was handed over
}

// Close stops the watch and waits for its goroutine.
func (w *watch) Close() error {
	w.closeOnce.Do(func() {
		w.cancel()
		<-w.done
		w.r.mu.Lock()
		delete(w.r.watches, w)
		w.r.mu.Unlock()
	})
	return nil
}

// run keeps the service's state current: watch from rev+1, and on any
// failure list again (rev == 0 means list first) and watch again.
func (w *watch) run(rev int64) {
	defer close(w.done)
	var backoff retry
	for {
		if rev == 0 {
			ctx, cancel := bound(w.ctx, w.r.cli, w.r.cfg.RequestTimeout)
			var err error
			rev, err = w.list(ctx)
			cancel()
			if err != nil {
				if w.ctx.Err() != nil {
					return
				}
				if w.r.cli.Ctx().Err() != nil {
					w.log.Warn("etcd: client closed; watch stopped, keeping the last snapshot")
					return
				}
				w.log.Warn("etcd: listing failed; keeping the last snapshot", slog.Any("err", err))
				if !sleep(w.ctx, backoff.next()) {
					return
				}
				continue
			}
		}
		if hook := w.r.beforeWatch; hook != nil {
			hook(w.service, rev)
		}
		err := w.follow(rev, &backoff)
		if w.ctx.Err() != nil {
			return
		}
		rev = 0
		if errors.Is(err, rpctypes.ErrCompacted) || errors.Is(err, errReconnected) {
			// Normal after a disconnection: list again at once.
			w.log.Info("etcd: resyncing", slog.Any("reason", err))
			continue
		}
		w.log.Warn("etcd: watch failed; resyncing", slog.Any("err", err))
		if !sleep(w.ctx, backoff.next()) {
			return
		}
	}
}

// list reads every instance of the service, hands over the snapshot if it
// changed and returns the revision it read at.
func (w *watch) list(ctx context.Context) (int64, error) {
	resp, err := w.r.cli.Get(ctx, w.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	w.state = make(map[string]discovery.Instance, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		w.put(kv.Key, kv.Value)
	}
	w.publish()
	return resp.Header.Revision, nil
}

// follow watches the service from rev+1, applying each batch of events,
// until the watch fails, its stream is reconnected or w is closed.
//
// Each follow has its own etcd Watcher, so its own gRPC stream, to see
// reconnections: the etcd client resumes a watch on a new stream from the
// revision after the last it delivered, which misses every write if etcd
// went back in time (restored from a backup, or an embedded etcd restarted
// on a fresh directory): etcd's new writes have lower revisions, and a
// watch on a revision etcd has not reached stays silent. Listing again
// after every reconnection costs one request and is always right.
func (w *watch) follow(rev int64, backoff *retry) error {
	spy := &streamSpy{
		WatchClient: pb.NewWatchClient(w.r.cli.ActiveConnection()),
		reopened:    make(chan struct{}, 1),
	}
	watcher := clientv3.NewWatchFromWatchClient(spy, w.r.cli)
	defer watcher.Close()
	// WithRequireLeader: a member cut off from its cluster ends the watch
	// instead of leaving it silent, and we resync through another one.
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(w.ctx))
	defer cancel()
	wch := watcher.Watch(ctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1),
		clientv3.WithCreatedNotify(), clientv3.WithProgressNotify())
	for {
		var resp clientv3.WatchResponse
		select {
		case <-spy.reopened:
			return errReconnected
		case r, ok := <-wch:
			if !ok {
				return errWatchClosed
			}
			resp = r
		}
		if err := resp.Err(); err != nil {
			return err
		}
		backoff.reset()
		if len(resp.Events) == 0 {
			continue // created or progress notification
		}
		for _, ev := range resp.Events {
			switch ev.Type {
			case clientv3.EventTypePut:
				w.put(ev.Kv.Key, ev.Kv.Value)
			case clientv3.EventTypeDelete:
				delete(w.state, string(ev.Kv.Key))
			}
		}
		w.publish()
	}
}

// put applies one key's value to the state; a value that does not parse
// counts as no instance.
func (w *watch) put(key, val []byte) {
	in, err := decode(w.r.cfg.Prefix, w.service, key, val)
	if err != nil {
		w.log.Warn("etcd: ignoring a malformed instance", slog.Any("err", err))
		delete(w.state, string(key))
		return
	}
	w.state[string(key)] = in
}

// publish hands over the state as a new snapshot if it differs from the
// last one.
func (w *watch) publish() {
	snap := slices.Collect(maps.Values(w.state))
	slices.SortFunc(snap, func(a, b discovery.Instance) int { return strings.Compare(a.Addr, b.Addr) })
	if w.known && slices.EqualFunc(snap, w.last, sameInstance) {
		return
	}
	w.known = true
	w.last = slices.Clone(snap)
	w.update(snap)
}

// streamSpy is a WatchClient that says when a watch stream is opened again.
type streamSpy struct {
	pb.WatchClient
	opened   atomic.Int64
	reopened chan struct{}
}

func (s *streamSpy) Watch(ctx context.Context, opts ...grpc.CallOption) (pb.Watch_WatchClient, error) {
	wc, err := s.WatchClient.Watch(ctx, opts...)
	if err == nil && s.opened.Add(1) > 1 {
		select {
		case s.reopened <- struct{}{}:
		default:
		}
	}
	return wc, err
}

func sameInstance(a, b discovery.Instance) bool {
	return a.Service == b.Service && a.Addr == b.Addr && a.Weight == b.Weight && maps.Equal(a.Labels, b.Labels)
}
