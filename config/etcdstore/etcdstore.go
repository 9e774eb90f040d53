// Package etcdstore is a config.Store in etcd, for a fleet that shares its
// governance rules through a control plane.
//
// Each document is one key, <prefix><kind>/<name> (by default
// /sluice/config/TrafficPolicy/checkout), whose value is the document as
// JSON without metadata.version; a document's version is its key's
// ModRevision. Apply writes a batch in one transaction that also checks
// every expected version, so a batch lands whole or not at all.
//
//	cli, _ := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}})
//	s := etcdstore.New(cli)
//	w, err := config.Watch(ctx, s)
//
// Watch lists the prefix, then watches it from the next revision with
// progress notifications, so that it can always resume where it stopped.
// If etcd has compacted that revision away, Watch lists again (a resync)
// and carries on from there; other failures are retried with backoff.
// Events of one transaction are applied together. A value that is not a
// valid document (written by something other than Apply) does not poison
// the snapshot: the last valid version of that document stays, and the
// error goes to the reject handler. Documents of kinds this program has not
// registered are skipped: a process follows only the kinds it links.
package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluicerpc/sluice/config"
)

// DefaultPrefix is where documents live unless WithPrefix says otherwise.
const DefaultPrefix = "/sluice/config/"

// Option configures a Store.
type Option func(*options)

type options struct {
	// prefix starts every key. Default: DefaultPrefix, "/sluice/config/".
	prefix string
	// onReject receives each stored value that is not a valid document.
	// Default: logged at Warn level by logger.
	onReject func(error)
	// logger logs rejected values when onReject is not set, and watch
	// restarts. Default: slog.Default().
	logger *slog.Logger
	// minBackoff and maxBackoff bound the wait before a failed watch is
	// retried; it doubles from min to max. Default: 100ms and 5s.
	minBackoff, maxBackoff time.Duration
}

func defaultOptions() options {
	return options{prefix: DefaultPrefix, logger: slog.Default(), minBackoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second}
}

// WithPrefix sets the key prefix; default "/sluice/config/". A "/" is added
// if it does not end with one.
func WithPrefix(p string) Option {
	return func(o *options) {
		if p != "" {
			o.prefix = strings.TrimSuffix(p, "/") + "/"
		}
	}
}

// WithOnReject sets the function that receives each stored value that is
// not a valid document (an *config.InvalidError whose Source is the key);
// by default it is logged at Warn level.
func WithOnReject(fn func(error)) Option { return func(o *options) { o.onReject = fn } }

// WithLogger sets the logger; default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithBackoff sets the bounds of the wait before a failed watch is retried;
// default 100ms doubling up to 5s.
func WithBackoff(minWait, maxWait time.Duration) Option {
	return func(o *options) {
		if minWait > 0 && maxWait >= minWait {
			o.minBackoff, o.maxBackoff = minWait, maxWait
		}
	}
}

// Store is a config.Store in etcd. It is safe for concurrent use.
type Store struct {
	cli *clientv3.Client
	o   options
}

var _ config.Store = (*Store)(nil)

// New returns a Store using cli, which the caller keeps and closes.
func New(cli *clientv3.Client, opts ...Option) *Store {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.onReject == nil {
		l := o.logger
		o.onReject = func(err error) {
			l.Warn("config: etcdstore: stored value rejected; its last valid version stays", "err", err)
		}
	}
	return &Store{cli: cli, o: o}
}

func (s *Store) key(k config.Key) string { return s.o.prefix + k.Kind + "/" + k.Name }

// parseKey splits an etcd key into kind and name.
func (s *Store) parseKey(key string) (config.Key, bool) {
	rest, ok := strings.CutPrefix(key, s.o.prefix)
	if !ok {
		return config.Key{}, false
	}
	kind, name, ok := strings.Cut(rest, "/")
	if !ok || kind == "" || name == "" || strings.Contains(name, "/") {
		return config.Key{}, false
	}
	return config.Key{Kind: kind, Name: name}, true
}

// Get implements config.Store. Values that are not valid documents are
// left out and reported to the reject handler.
func (s *Store) Get(ctx context.Context) (*config.Snapshot, error) {
	snap, _, err := s.list(ctx, nil)
	return snap, err
}

// list reads the whole prefix and returns it as an update of prev: a
// stored value that is invalid keeps prev's version of its document.
func (s *Store) list(ctx context.Context, prev *config.Snapshot) (*config.Snapshot, int64, error) {
	resp, err := s.cli.Get(ctx, s.o.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("config: etcdstore: list %s: %w", s.o.prefix, err)
	}
	present := map[config.Key]bool{}
	var put []config.Document
	for _, kv := range resp.Kvs {
		k, d, ok := s.document(kv)
		if k != (config.Key{}) {
			present[k] = true
		}
		if ok {
			put = append(put, d)
		}
	}
	var del []config.Key
	for _, e := range prev.All() {
		if k := e.Doc.Key(); !present[k] {
			del = append(del, k)
		}
	}
	rev := resp.Header.Revision
	next, rejected := prev.Update(rev, put, del)
	s.reject(rejected)
	return next, rev, nil
}

// document reads a stored value. It returns the key it belongs to (zero if
// it is not one of ours) and the document, with ok false if there is none
// to use: a value of a kind this program does not know, or one that does
// not parse (reported).
func (s *Store) document(kv *mvccpb.KeyValue) (config.Key, config.Document, bool) {
	key := string(kv.Key)
	k, ok := s.parseKey(key)
	if !ok || !config.Registered(k.Kind) {
		return config.Key{}, config.Document{}, false
	}
	src := fmt.Sprintf("%s@%d", key, kv.ModRevision)
	docs, err := config.ParseSource(src, kv.Value)
	if err == nil && len(docs) != 1 {
		err = &config.InvalidError{Source: src, Kind: k.Kind, Name: k.Name, Fields: config.FieldErrors{{Reason: fmt.Sprintf("the value holds %d documents, not 1", len(docs))}}}
	}
	if err == nil && docs[0].Key() != k {
		err = &config.InvalidError{Source: src, Kind: k.Kind, Name: k.Name, Fields: config.FieldErrors{{Path: "metadata.name", Reason: "the value is " + docs[0].Key().String() + ", the key says " + k.String()}}}
	}
	if err != nil {
		s.reject(err)
		return k, config.Document{}, false
	}
	d := docs[0]
	d.Metadata.Version = kv.ModRevision
	return k, d, true
}

// reject reports each of the errors joined in err.
func (s *Store) reject(err error) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			s.reject(e)
		}
		return
	}
	s.o.onReject(err)
}

// Apply implements config.Store: one transaction that checks every
// expected version and writes every document. A batch is limited by etcd's
// --max-txn-ops (default 128 documents).
func (s *Store) Apply(ctx context.Context, docs []config.Document) (int64, error) {
	if err := config.Validate(docs); err != nil {
		return 0, err
	}
	var cmps []clientv3.Cmp
	var puts, gets []clientv3.Op
	var checked []config.Document
	for _, d := range docs {
		key := s.key(d.Key())
		switch v := d.Metadata.Version; {
		case v == config.Absent:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		case v > 0:
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", v))
		}
		if d.Metadata.Version != 0 {
			gets = append(gets, clientv3.OpGet(key))
			checked = append(checked, d)
		}
		d.Metadata.Version = 0
		val, err := json.Marshal(d)
		if err != nil {
			return 0, fmt.Errorf("config: etcdstore: %s: %w", d.Key(), err)
		}
		puts = append(puts, clientv3.OpPut(key, string(val)))
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(puts...).Else(gets...).Commit()
	if err != nil {
		return 0, fmt.Errorf("config: etcdstore: apply: %w", err)
	}
	if !resp.Succeeded {
		var errs []error
		for i, d := range checked {
			var have int64
			if kvs := resp.Responses[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
				have = kvs[0].ModRevision
			}
			want := d.Metadata.Version
			if (want == config.Absent && have != 0) || (want > 0 && have != want) {
				errs = append(errs, &config.ConflictError{Key: d.Key(), Expected: want, Actual: have})
			}
		}
		if len(errs) == 0 { // cannot happen: some comparison failed
			return 0, &config.ConflictError{Key: checked[0].Key(), Expected: checked[0].Metadata.Version}
		}
		return 0, errors.Join(errs...)
	}
	return resp.Header.Revision, nil
}

// Delete implements config.Store.
func (s *Store) Delete(ctx context.Context, kind, name string, version int64) (int64, error) {
	k := config.Key{Kind: kind, Name: name}
	if version < 0 {
		return 0, &config.InvalidError{Kind: kind, Name: name, Fields: config.FieldErrors{{
			Path: "metadata.version", Reason: fmt.Sprintf("Delete takes 0 (any) or a stored version, not %d", version)}}}
	}
	key := s.key(k)
	var cmps []clientv3.Cmp
	if version > 0 {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", version))
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(clientv3.OpDelete(key)).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return 0, fmt.Errorf("config: etcdstore: delete %s: %w", k, err)
	}
	if resp.Succeeded {
		if resp.Responses[0].GetResponseDeleteRange().GetDeleted() == 0 {
			return 0, &config.NotFoundError{Key: k}
		}
		return resp.Header.Revision, nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return 0, &config.NotFoundError{Key: k}
	}
	return 0, &config.ConflictError{Key: k, Expected: version, Actual: kvs[0].ModRevision}
}

// Watch implements config.Source.
func (s *Store) Watch(ctx context.Context, update func(*config.Snapshot)) (io.Closer, error) {
	w, err := s.watch(ctx, update)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// watcher follows the prefix for one Watch call.
type watcher struct {
	s      *Store
	update func(*config.Snapshot)
	cancel context.CancelFunc
	done   chan struct{}

	snap *config.Snapshot // last built; only the run goroutine touches it after start
	last *config.Snapshot // last delivered
	rev  atomic.Int64     // every change up to rev is in snap
	// resyncs counts full re-lists after the first; for tests.
	resyncs atomic.Int64
}

func (s *Store) watch(ctx context.Context, update func(*config.Snapshot)) (*watcher, error) {
	snap, rev, err := s.list(ctx, nil)
	if err != nil {
		return nil, err
	}
	update(snap)
	ctx, cancel := context.WithCancel(ctx)
	w := &watcher{s: s, update: update, cancel: cancel, done: make(chan struct{}), snap: snap, last: snap}
	w.rev.Store(rev)
	go w.run(ctx)
	return w, nil
}

// Close stops the watch and waits for it to end.
func (w *watcher) Close() error {
	w.cancel()
	<-w.done
	return nil
}

func (w *watcher) run(ctx context.Context) {
	defer close(w.done)
	backoff := w.s.o.minBackoff
	for ctx.Err() == nil {
		err := w.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, rpctypes.ErrCompacted) {
			// The revision to resume from is gone: read everything again.
			if err = w.resync(ctx); err == nil {
				backoff = w.s.o.minBackoff
				continue
			}
		}
		w.s.o.logger.Debug("config: etcdstore: watch restarts", "prefix", w.s.o.prefix, "after", backoff, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, w.s.o.maxBackoff)
	}
}

// follow watches from the revision after w.rev until the watch fails.
func (w *watcher) follow(ctx context.Context) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	ch := w.s.cli.Watch(wctx, w.s.o.prefix, clientv3.WithPrefix(), clientv3.WithRev(w.rev.Load()+1), clientv3.WithProgressNotify())
	for resp := range ch {
		if err := resp.Err(); err != nil {
			return err
		}
		if resp.IsProgressNotify() {
			// Nothing of ours changed up to this revision: resume from here.
			w.advance(resp.Header.Revision)
			continue
		}
		if len(resp.Events) == 0 {
			continue
		}
		w.apply(resp.Events)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("config: etcdstore: watch channel closed")
}

func (w *watcher) advance(rev int64) {
	if rev > w.rev.Load() {
		w.rev.Store(rev)
	}
}

// apply folds one watch response into the snapshot. etcd sends all events
// of a revision (one transaction) in one response, so a transaction is
// applied whole. A response may hold several revisions: each is applied
// in turn, so that every value is checked and a bad one reported even when
// a later revision in the response replaces it; subscribers see the last.
func (w *watcher) apply(events []*clientv3.Event) {
	snap, rev := w.snap, int64(0)
	for len(events) > 0 {
		n := 1
		for n < len(events) && events[n].Kv.ModRevision == events[0].Kv.ModRevision {
			n++
		}
		rev = max(rev, events[0].Kv.ModRevision)
		put, del := w.changes(events[:n])
		next, rejected := snap.Update(rev, put, del)
		w.s.reject(rejected)
		snap, events = next, events[n:]
	}
	w.publish(snap)
	w.advance(rev)
}

// changes returns what the events of one transaction put and delete,
// leaving out values that are not valid documents (document reports them).
func (w *watcher) changes(events []*clientv3.Event) (put []config.Document, del []config.Key) {
	for _, ev := range events {
		switch ev.Type {
		case clientv3.EventTypeDelete:
			if k, ok := w.s.parseKey(string(ev.Kv.Key)); ok {
				del = append(del, k)
			}
		case clientv3.EventTypePut:
			if _, doc, ok := w.s.document(ev.Kv); ok {
				put = append(put, doc)
			}
		}
	}
	return put, del
}

// resync replaces the snapshot with a full listing.
func (w *watcher) resync(ctx context.Context) error {
	next, rev, err := w.s.list(ctx, w.snap)
	if err != nil {
		return err
	}
	w.resyncs.Add(1)
	w.publish(next)
	w.rev.Store(rev)
	return nil
}

// publish keeps next and hands it out if its content changed.
func (w *watcher) publish(next *config.Snapshot) {
	w.snap = next
	if !next.Equal(w.last) {
		w.last = next
		w.update(next)
	}
}
