package config

import (
	"context"
	"io"
)

// Source hands out whole snapshots of the documents as they change. A
// process that only follows governance rules needs nothing more.
type Source interface {
	// Watch calls update with the current snapshot before it returns, then
	// with each new snapshot until ctx ends or the Closer is closed. Calls
	// are one at a time, in revision order, and only when the content
	// changed (Snapshot.Equal). A document that turns invalid in the store
	// is not passed on: its last valid version stays in the snapshots, and
	// the store reports the error in its own way. update must return
	// quickly and must not close the Closer; Close waits for a running
	// update and no update follows it.
	Watch(ctx context.Context, update func(*Snapshot)) (io.Closer, error)
}

// Store is where documents live: etcd for a fleet (config/etcdstore), a
// file for a process without a control plane (config/filestore).
type Store interface {
	Source
	// Get reads the current snapshot.
	Get(ctx context.Context) (*Snapshot, error)
	// Apply writes docs, all or none. Every document is validated first;
	// if any is invalid, nothing is written and the error joins the
	// *InvalidError of each (errors.Is(err, ErrInvalid)). Each document's
	// Metadata.Version is the version it expects to replace (0: any,
	// Absent: none); if any does not match, nothing is written and the
	// error is a *ConflictError (errors.Is(err, ErrConflict)). Apply
	// returns the store revision of the write.
	Apply(ctx context.Context, docs []Document) (int64, error)
	// Delete removes one document, if it is at version (0: any version).
	// It fails with a *NotFoundError if there is no such document and with
	// a *ConflictError if its version differs. It returns the store
	// revision of the delete.
	Delete(ctx context.Context, kind, name string, version int64) (int64, error)
}
