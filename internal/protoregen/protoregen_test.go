package protoregen_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicerpc/sluice/internal/protoregen"
)

// TestCommittedFilesUpToDate regenerates every file and compares it with the
// committed copy.
func TestCommittedFilesUpToDate(t *testing.T) {
	root, err := protoregen.Root(".")
	if err != nil {
		t.Fatal(err)
	}
	files, err := protoregen.Generate(context.Background(), root, protoregen.Files...)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	// Guard against generating nothing and so comparing nothing.
	for _, name := range []string{
		"examples/echo/echopb/echo.pb.go",
		"examples/echo/echopb/echo_sluice.pb.go",
	} {
		if _, ok := files[name]; !ok {
			t.Errorf("%s was not generated", name)
		}
	}
	for name, want := range files {
		t.Run(name, func(t *testing.T) {
			got, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
			if err != nil {
				t.Fatalf("%v; run `go run ./internal/cmd/protoregen` from the repository root", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s is out of date; run `go run ./internal/cmd/protoregen` from the repository root", name)
			}
		})
	}
}

func TestGenerateFailsOnStreaming(t *testing.T) {
	dir := t.TempDir()
	src := `syntax = "proto3";
package sluice.x.v1;
option go_package = "github.com/sluicerpc/sluice/x/xpb";
message M {}
service Svc { rpc Watch(M) returns (stream M); }
`
	if err := os.WriteFile(filepath.Join(dir, "x.proto"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := protoregen.Generate(context.Background(), dir, "x.proto")
	want := "protoc-gen-sluice: method sluice.x.v1.Svc.Watch is server-streaming; Sluice generates unary methods only"
	if err == nil || err.Error() != want {
		t.Errorf("Generate error = %v, want %q", err, want)
	}
}
