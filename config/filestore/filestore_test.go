package filestore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/config/configtest"
	"github.com/sluicerpc/sluice/config/filestore"
)

func TestMain(m *testing.M) {
	configtest.Register()
	goleak.VerifyTestMain(m)
}

const tick = 5 * time.Millisecond

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSuite(t *testing.T) {
	for _, name := range []string{"rules.yaml", "rules.json"} {
		t.Run(name, func(t *testing.T) {
			configtest.Suite(t, func(t *testing.T) config.Store {
				path := filepath.Join(t.TempDir(), name)
				write(t, path, "")
				return filestore.New(path, filestore.WithInterval(tick))
			})
		})
	}
}

const widgets = `# two widgets
apiVersion: sluice/v1
kind: Widget
metadata:
  name: a
spec:
  size: 1
---
apiVersion: sluice/v1
kind: Widget
metadata:
  name: b
spec:
  size: 2
`

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "10-widgets.yaml"), widgets)
	write(t, filepath.Join(dir, "20-more.json"), `[{"apiVersion":"sluice/v1","kind":"Widget","metadata":{"name":"c"},"spec":{"size":3}}]`)
	write(t, filepath.Join(dir, ".hidden.yaml"), "not: [valid")
	write(t, filepath.Join(dir, "notes.txt"), "not a config file")
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	snap, err := filestore.New(dir).Get(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range snap.List(configtest.WidgetKind) {
		names = append(names, e.Doc.Metadata.Name)
	}
	if strings.Join(names, ",") != "a,b,c" || configtest.Spec(snap, "c").Size != 3 {
		t.Errorf("documents %v, want a,b,c with c size 3", names)
	}
	if snap.Revision() != 1 {
		t.Errorf("first revision = %d, want 1", snap.Revision())
	}

	// A document in two files is a duplicate.
	write(t, filepath.Join(dir, "30-dup.yaml"), "apiVersion: sluice/v1\nkind: Widget\nmetadata: {name: a}\n")
	_, err = filestore.New(dir).Get(ctx(t))
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "30-dup.yaml") || !strings.Contains(err.Error(), "appears twice") {
		t.Errorf("Get with a duplicate = %v, want an error naming 30-dup.yaml", err)
	}
}

func TestGetMissingFile(t *testing.T) {
	_, err := filestore.New(filepath.Join(t.TempDir(), "none.yaml")).Get(ctx(t))
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "config: filestore:") {
		t.Errorf("Get of a missing file = %v", err)
	}
}

// watch starts watching s and collects what it reports.
func watch(t *testing.T, s config.Source) *config.Watcher {
	t.Helper()
	w, err := config.Watch(ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func TestHotReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	write(t, path, widgets)
	w := watch(t, filestore.New(path, filestore.WithInterval(tick)))
	first := w.Current()
	if first.Len() != 2 {
		t.Fatalf("first snapshot has %d documents, want 2", first.Len())
	}
	// Same length, same second: only the content tells.
	write(t, path, strings.Replace(widgets, "size: 2", "size: 5", 1))
	configtest.Eventually(t, "b=5", func() bool {
		b := configtest.Spec(w.Current(), "b")
		return b != nil && b.Size == 5
	})
	cur := w.Current()
	if cur.Revision() != 2 {
		t.Errorf("revision %d, want 2", cur.Revision())
	}
	a, _, _ := cur.Get(configtest.WidgetKind, "a")
	b, _, _ := cur.Get(configtest.WidgetKind, "b")
	if a.Metadata.Version != 1 || b.Metadata.Version != 2 {
		t.Errorf("versions a=%d b=%d, want 1 (unchanged) and 2", a.Metadata.Version, b.Metadata.Version)
	}
	if _, spec, _ := first.Get(configtest.WidgetKind, "b"); spec.(*configtest.Widget).Size != 2 {
		t.Errorf("the old snapshot changed")
	}
}

func TestInvalidEditKeepsRunningConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	write(t, path, widgets)
	var rj configtest.Rejects
	s := filestore.New(path, filestore.WithInterval(tick), filestore.WithOnReject(rj.Add))
	w := watch(t, s)
	before := w.Current()

	bad := strings.Replace(widgets, "size: 2", "size: -2\n  colour: red", 1)
	write(t, path, bad)
	configtest.Eventually(t, "the bad edit to be rejected", func() bool { return len(rj.All()) > 0 })
	time.Sleep(10 * tick) // more polls of the same bad content
	errs := rj.All()
	if len(errs) != 1 {
		t.Fatalf("%d reports of one bad edit, want 1: %v", len(errs), errs)
	}
	var ie *config.InvalidError
	if !errors.As(errs[0], &ie) {
		t.Fatalf("reject %v: want an *InvalidError", errs[0])
	}
	if ie.Source != path || ie.Index != 2 || ie.Name != "b" || ie.Line != 9 {
		t.Errorf("reject %+v: want %s document 2 (b) at line 9", ie, path)
	}
	got := map[string]int{}
	for _, f := range ie.Fields {
		got[f.Path] = f.Line
	}
	// colour is caught while decoding, before size would be validated.
	if len(got) != 1 || got["spec.colour"] != 15 || !strings.Contains(ie.Fields[0].Reason, `did you mean "color"`) {
		t.Errorf("fields %v: want spec.colour at line 15, with a suggestion", ie.Fields)
	}
	if w.Current() != before {
		t.Errorf("the snapshot changed after an invalid edit")
	}

	// A removed file is reported too, and does not clear the config.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	configtest.Eventually(t, "the removal to be reported", func() bool { return len(rj.All()) == 2 })
	if !errors.Is(rj.All()[1], os.ErrNotExist) || w.Current() != before {
		t.Errorf("after removal: %v, snapshot kept %v", rj.All()[1], w.Current() == before)
	}

	// Fixing the file brings the new content in.
	write(t, path, strings.Replace(widgets, "size: 2", "size: 7", 1))
	configtest.Eventually(t, "b=7", func() bool {
		b := configtest.Spec(w.Current(), "b")
		return b != nil && b.Size == 7
	})
}

func TestApplyReplacesFileAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	write(t, path, widgets)
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	s := filestore.New(path)

	// A reader of the file itself sees a and b at one generation, always.
	done := make(chan struct{})
	var torn atomic.Value
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			data, err := os.ReadFile(path)
			if err != nil {
				torn.Store(err.Error())
				return
			}
			snap, err := config.NewSnapshot(1, mustParse(t, data))
			if err != nil {
				torn.Store(err.Error())
				return
			}
			a, b := configtest.Spec(snap, "a"), configtest.Spec(snap, "b")
			if a == nil || b == nil || a.Generation != b.Generation {
				torn.Store("a and b out of step: " + string(data))
				return
			}
		}
	})
	for g := 1; g <= 30; g++ {
		if _, err := s.Apply(ctx(t), []config.Document{
			configtest.Doc("a", configtest.Widget{Generation: g}),
			configtest.Doc("b", configtest.Widget{Generation: g}),
		}); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	if m := torn.Load(); m != nil {
		t.Fatalf("a reader saw a partial file: %v", m)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 kept", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the file (no temporary files left)", len(ents))
	}
	data, _ := os.ReadFile(path)
	if docs := mustParse(t, data); len(docs) != 2 || docs[0].Metadata.Name != "a" || docs[1].Metadata.Name != "b" {
		t.Errorf("file order not kept:\n%s", data)
	}
	if strings.Contains(string(data), "version") {
		t.Errorf("versions written to the file:\n%s", data)
	}
}

func mustParse(t *testing.T, data []byte) []config.Document {
	docs, err := config.Parse(data)
	if err != nil {
		t.Errorf("parse: %v", err)
	}
	return docs
}

func TestApplyCreatesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.yaml")
	s := filestore.New(path)
	rev, err := s.Apply(ctx(t), []config.Document{configtest.WithVersion(configtest.Doc("a", configtest.Widget{Size: 1}), config.Absent)})
	if err != nil || rev != 1 {
		t.Fatalf("Apply to a new file = %d, %v; want revision 1", rev, err)
	}
	snap, err := filestore.New(path).Get(ctx(t))
	if err != nil || configtest.Spec(snap, "a").Size != 1 {
		t.Fatalf("a fresh store reads %v, %v", snap, err)
	}
}

func TestApplyToInvalidFileRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	write(t, path, "apiVersion: sluice/v2\n")
	_, err := filestore.New(path).Apply(ctx(t), []config.Document{configtest.Doc("a", configtest.Widget{})})
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "must be valid before") {
		t.Errorf("Apply over an invalid file = %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "apiVersion: sluice/v2\n" {
		t.Errorf("the invalid file was overwritten: %q", data)
	}
}

func TestDirectoryIsReadOnly(t *testing.T) {
	s := filestore.New(t.TempDir())
	if _, err := s.Apply(ctx(t), []config.Document{configtest.Doc("a", configtest.Widget{})}); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Apply to a directory = %v, want ErrUnsupported", err)
	}
	if _, err := s.Delete(ctx(t), configtest.WidgetKind, "a", 0); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Delete in a directory = %v, want ErrUnsupported", err)
	}
}
