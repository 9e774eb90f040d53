// Command protoregen regenerates the repository's protobuf Go code (messages
// and Sluice stubs) without protoc. Run it from anywhere in the repository:
//
//	go run ./internal/cmd/protoregen
//
// The .proto files it compiles are listed in protoregen.Files.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/sluicerpc/sluice/internal/protoregen"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	root, err := protoregen.Root(".")
	if err != nil {
		return err
	}
	files, err := protoregen.Generate(context.Background(), root, protoregen.Files...)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", name)
	}
	return nil
}
