package config_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/sluicerpc/sluice/config"
)

// manual is a Source that publishes what the test tells it to.
type manual struct {
	update func(*config.Snapshot)
	first  *config.Snapshot
	closed bool
	err    error
}

func (m *manual) Watch(_ context.Context, update func(*config.Snapshot)) (io.Closer, error) {
	if m.err != nil {
		return nil, m.err
	}
	m.update = update
	if m.first != nil {
		update(m.first)
	}
	return m, nil
}

func (m *manual) Close() error { m.closed = true; return nil }

func snap(t *testing.T, rev int64) *config.Snapshot {
	s, err := config.NewSnapshot(rev, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWatcher(t *testing.T) {
	s1, s2, s3 := snap(t, 1), snap(t, 2), snap(t, 3)
	src := &manual{first: s1}
	w, err := config.Watch(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if w.Current() != s1 {
		t.Fatalf("Current is not the first snapshot")
	}
	var got []int64
	cancel := w.Subscribe(func(s *config.Snapshot) {
		if w.Current() != s {
			t.Errorf("subscriber called before Current moved")
		}
		got = append(got, s.Revision())
	})
	var self func()
	self = w.Subscribe(func(s *config.Snapshot) {
		if s.Revision() == 2 {
			self() // cancel from inside the callback
		}
		got = append(got, -s.Revision())
	})
	src.update(s2)
	cancel()
	src.update(s3)
	if want := []int64{1, -1, 2, -2}; len(got) != len(want) || got[0] != 1 || got[1] != -1 || got[2] != 2 || got[3] != -2 {
		t.Errorf("deliveries %v, want %v", got, want)
	}
	if w.Current() != s3 {
		t.Errorf("Current is not the last snapshot")
	}
	w.Close()
	if !src.closed {
		t.Errorf("Close did not close the source's watch")
	}
}

func TestWatcherBeforeFirstSnapshot(t *testing.T) {
	w, err := config.Watch(context.Background(), &manual{})
	if err != nil {
		t.Fatal(err)
	}
	if c := w.Current(); c == nil || c.Len() != 0 {
		t.Errorf("Current = %v, want an empty snapshot", c)
	}
	boom := errors.New("boom")
	if _, err := config.Watch(context.Background(), &manual{err: boom}); err != boom {
		t.Errorf("Watch = %v, want the source's error", err)
	}
}
