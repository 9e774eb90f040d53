// Package filestore is a config.Store over a file, or a directory of files,
// for processes that run without a control plane. Files hold YAML (one or
// more documents separated by "---") or JSON; in a directory, every
// *.yaml, *.yml and *.json file not starting with "." is read, in name
// order, as if they were one file.
//
//	s := filestore.New("/etc/sluice/rules.yaml")
//	w, err := config.Watch(ctx, s) // reloads when the file changes
//
// Watch polls: every interval it compares the files' size and modification
// time, and their content hash when those say nothing (or the file changed
// within the last two seconds, finer than many file systems' timestamps).
// A change is taken only when every document is valid; an invalid edit is
// reported (once per content) and the last valid snapshot stays live. A
// removed or unreadable file is reported the same way: it does not clear
// the running config.
//
// Versions and revisions are counted by the Store in memory: the first
// successful read is revision 1, each accepted change and each Apply adds
// one, and a document's version is the revision at which it was last
// applied or its content last changed. A metadata.version written in a file
// is ignored. Two Stores, or two processes, over one file count separately.
//
// Apply and Delete need a single file, not a directory. They validate,
// check expected versions against the file as it is now, and replace the
// file atomically (a temporary file renamed over it), so a reader never
// sees half a write. The file is rewritten whole from its documents:
// comments and formatting are not kept. Concurrent Apply calls on one Store
// are serialized; Stores in different processes do not coordinate.
package filestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluicerpc/sluice/config"
)

// Option configures a Store.
type Option func(*options)

type options struct {
	// interval is how often Watch checks the files. Default: 1s.
	interval time.Duration
	// onReject receives each invalid or unreadable change Watch finds,
	// once per content. Default: logged at Warn level by logger.
	onReject func(error)
	// logger logs rejected changes when onReject is not set.
	// Default: slog.Default().
	logger *slog.Logger
}

func defaultOptions() options {
	return options{interval: time.Second, logger: slog.Default()}
}

// WithInterval sets how often Watch checks the files; default 1s.
func WithInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.interval = d
		}
	}
}

// WithOnReject sets the function that receives each invalid or unreadable
// change Watch finds (an *config.InvalidError, a joined list of them, or an
// I/O error), once per content; by default it is logged at Warn level.
func WithOnReject(fn func(error)) Option { return func(o *options) { o.onReject = fn } }

// WithLogger sets the logger of rejected changes; default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// Store is a config.Store over a file or a directory. It is safe for
// concurrent use.
type Store struct {
	path string
	o    options

	mu   sync.Mutex // guards what follows, and serializes writes
	rev  int64
	snap *config.Snapshot  // last accepted; nil before the first
	docs []config.Document // of snap, in file order
	sum  [sha256.Size]byte // content hash of snap's files
	sig  []fileSig         // size and mtime of snap's files
}

var _ config.Store = (*Store)(nil)

// New returns a Store over path, a file or a directory. It reads nothing
// until asked.
func New(path string, opts ...Option) *Store {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.onReject == nil {
		l := o.logger
		o.onReject = func(err error) {
			l.Warn("config: filestore: change rejected; the running config stays", "path", path, "err", err)
		}
	}
	return &Store{path: path, o: o}
}

type fileSig struct {
	name  string
	size  int64
	mtime time.Time
}

// racyWindow is how recent a modification must be for size and mtime not
// to be trusted: coarse timestamps can hide a second write.
const racyWindow = 2 * time.Second

// Get reads the files now. It fails if they cannot be read or any document
// is invalid.
func (s *Store) Get(ctx context.Context) (*config.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, _, err := s.load(false)
	return snap, err
}

// load returns the snapshot of the files as they are, reading them only if
// they may have changed (always, if force). On failure it returns the
// error and a hash that identifies the failure, and keeps the last
// snapshot. s.mu must be held.
func (s *Store) load(force bool) (*config.Snapshot, [sha256.Size]byte, error) {
	files, sig, err := s.list()
	if err != nil {
		return nil, sha256.Sum256([]byte(err.Error())), err
	}
	if !force && s.snap != nil && slices.Equal(sig, s.sig) && !racy(sig) {
		return s.snap, s.sum, nil
	}
	h := sha256.New()
	contents := make([][]byte, len(files))
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, sha256.Sum256([]byte(err.Error())), fmt.Errorf("config: filestore: %w", err)
		}
		contents[i] = b
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
		h.Write(b)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if s.snap != nil && sum == s.sum {
		s.sig = sig
		return s.snap, sum, nil
	}
	var docs []config.Document
	var errs []error
	for i, f := range files {
		ds, err := config.ParseSource(f, contents[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		docs = append(docs, ds...)
	}
	if len(errs) > 0 {
		return nil, sum, errors.Join(errs...)
	}
	for i := range docs {
		docs[i].Metadata.Version = 0
	}
	if err := config.Validate(docs); err != nil {
		return nil, sum, err
	}
	next, err := s.snap.Update(s.rev+1, docs, s.gone(docs))
	if err != nil {
		return nil, sum, err // Validate passed: cannot happen
	}
	s.rev++
	s.snap, s.docs, s.sum, s.sig = next, docs, sum, sig
	return next, sum, nil
}

// gone returns the keys of the current snapshot missing from docs.
func (s *Store) gone(docs []config.Document) []config.Key {
	keep := make(map[config.Key]bool, len(docs))
	for _, d := range docs {
		keep[d.Key()] = true
	}
	var del []config.Key
	for _, e := range s.snap.All() {
		if k := e.Doc.Key(); !keep[k] {
			del = append(del, k)
		}
	}
	return del
}

// list returns the files to read and their signature.
func (s *Store) list() ([]string, []fileSig, error) {
	fi, err := os.Stat(s.path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: filestore: %w", err)
	}
	if !fi.IsDir() {
		return []string{s.path}, []fileSig{{s.path, fi.Size(), fi.ModTime()}}, nil
	}
	ents, err := os.ReadDir(s.path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: filestore: %w", err)
	}
	var files []string
	var sig []fileSig
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !isConfigFile(name) {
			continue
		}
		p := filepath.Join(s.path, name)
		fi, err := os.Stat(p) // follows symlinks, as Kubernetes volumes use them
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since ReadDir
			}
			return nil, nil, fmt.Errorf("config: filestore: %w", err)
		}
		if fi.IsDir() {
			continue
		}
		files = append(files, p)
		sig = append(sig, fileSig{p, fi.Size(), fi.ModTime()})
	}
	return files, sig, nil
}

func isConfigFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

func racy(sig []fileSig) bool {
	for _, f := range sig {
		if time.Since(f.mtime) < racyWindow {
			return true
		}
	}
	return false
}

// Watch implements config.Source: it reads the files, calls update, and
// then checks them every interval.
func (s *Store) Watch(ctx context.Context, update func(*config.Snapshot)) (io.Closer, error) {
	first, err := s.Get(ctx)
	if err != nil {
		return nil, err
	}
	update(first)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(s.o.interval)
		defer t.Stop()
		last := first
		var reported [sha256.Size]byte
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			s.mu.Lock()
			next, sum, err := s.load(false)
			s.mu.Unlock()
			if err != nil {
				if sum != reported {
					reported = sum
					s.o.onReject(err)
				}
				continue
			}
			if next != last && !next.Equal(last) && ctx.Err() == nil {
				update(next)
			}
			last = next
		}
	}()
	return closer{cancel, done}, nil
}

type closer struct {
	cancel context.CancelFunc
	done   <-chan struct{}
}

func (c closer) Close() error {
	c.cancel()
	<-c.done
	return nil
}

// errDir is returned by writes to a directory store.
func (s *Store) errDir() error {
	return fmt.Errorf("config: filestore: %s is a directory; Apply and Delete need a single file: %w", s.path, errors.ErrUnsupported)
}

// current reads the file for a write; a file that does not exist yet is
// empty. s.mu must be held.
func (s *Store) current() (*config.Snapshot, error) {
	fi, err := os.Stat(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s.snap.Update(s.rev, nil, s.gone(nil))
	case err != nil:
		return nil, fmt.Errorf("config: filestore: %w", err)
	case fi.IsDir():
		return nil, s.errDir()
	}
	snap, _, err := s.load(true)
	if err != nil {
		return nil, fmt.Errorf("config: filestore: %s must be valid before it is written to: %w", s.path, err)
	}
	return snap, nil
}

// Apply implements config.Store.
func (s *Store) Apply(ctx context.Context, docs []config.Document) (int64, error) {
	if err := config.Validate(docs); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.current()
	if err != nil {
		return 0, err
	}
	var conflicts []error
	for _, d := range docs {
		if err := check(cur, d.Key(), d.Metadata.Version); err != nil {
			conflicts = append(conflicts, err)
		}
	}
	if len(conflicts) > 0 {
		return 0, errors.Join(conflicts...)
	}
	merged := slices.Clone(s.docsOf(cur))
	for _, d := range docs {
		d.Metadata.Version = 0
		if i := slices.IndexFunc(merged, func(x config.Document) bool { return x.Key() == d.Key() }); i >= 0 {
			merged[i] = d
		} else {
			merged = append(merged, d)
		}
	}
	touched := make([]config.Key, len(docs))
	for i, d := range docs {
		touched[i] = d.Key()
	}
	return s.write(merged, touched)
}

// Delete implements config.Store.
func (s *Store) Delete(ctx context.Context, kind, name string, version int64) (int64, error) {
	key := config.Key{Kind: kind, Name: name}
	if version < 0 {
		return 0, &config.InvalidError{Kind: kind, Name: name, Fields: config.FieldErrors{{
			Path: "metadata.version", Reason: fmt.Sprintf("Delete takes 0 (any) or a stored version, not %d", version)}}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.current()
	if err != nil {
		return 0, err
	}
	if _, _, ok := cur.Get(kind, name); !ok {
		return 0, &config.NotFoundError{Key: key}
	}
	if err := check(cur, key, version); err != nil {
		return 0, err
	}
	docs := slices.DeleteFunc(slices.Clone(s.docsOf(cur)), func(d config.Document) bool { return d.Key() == key })
	return s.write(docs, nil)
}

// docsOf returns the documents of cur in file order.
func (s *Store) docsOf(cur *config.Snapshot) []config.Document {
	if cur.Len() == 0 {
		return nil
	}
	return s.docs
}

// check compares the stored version of key with the expected one.
func check(cur *config.Snapshot, key config.Key, want int64) error {
	d, _, ok := cur.Get(key.Kind, key.Name)
	var have int64
	if ok {
		have = d.Metadata.Version
	}
	switch {
	case want == 0, want == config.Absent && !ok, want > 0 && have == want:
		return nil
	}
	return &config.ConflictError{Key: key, Expected: want, Actual: have}
}

// write replaces the file with docs and reads it back. The documents named
// in touched get a new version even if their content did not change, as an
// etcd put would. s.mu must be held.
func (s *Store) write(docs []config.Document, touched []config.Key) (int64, error) {
	var data []byte
	var err error
	if strings.EqualFold(filepath.Ext(s.path), ".json") {
		data, err = encodeJSON(docs)
	} else {
		data, err = config.Encode(docs)
	}
	if err != nil {
		return 0, fmt.Errorf("config: filestore: %w", err)
	}
	if err := writeFile(s.path, data); err != nil {
		return 0, err
	}
	before := s.rev
	if _, _, err := s.load(true); err != nil {
		return 0, err
	}
	if len(touched) > 0 {
		rev := s.rev
		if rev == before { // the file did not change, but this was a write
			rev++
		}
		put := make([]config.Document, 0, len(touched))
		for _, k := range touched {
			if d, _, ok := s.snap.Get(k.Kind, k.Name); ok {
				d.Metadata.Version = rev
				put = append(put, d)
			}
		}
		next, err := s.snap.Update(rev, put, nil)
		if err != nil {
			return 0, err // the documents are in the snapshot already: cannot happen
		}
		s.rev, s.snap = rev, next
	}
	return s.rev, nil
}

func encodeJSON(docs []config.Document) ([]byte, error) {
	if docs == nil {
		docs = []config.Document{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	err := enc.Encode(docs)
	return b.Bytes(), err
}

// writeFile replaces path with data atomically: readers see the old file or
// the new one, whole.
func writeFile(path string, data []byte) (err error) {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("config: filestore: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("config: filestore: %w", err)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // make the rename durable; best effort
		d.Close()
	}
	return nil
}
