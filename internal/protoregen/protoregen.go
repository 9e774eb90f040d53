// Package protoregen regenerates the repository's protobuf Go code without
// protoc: it compiles .proto files with protocompile and runs protoc-gen-go
// and protoc-gen-sluice in-process. CI has no protoc, and a test checks that
// the committed files match what Generate produces.
//
// To regenerate, from the repository root:
//
//	go run ./internal/cmd/protoregen
//
// Example, in a test:
//
//	files, err := protoregen.Generate(ctx, root, protoregen.Files...)
//	// files["examples/echo/echopb/echo_sluice.pb.go"] is the stub source.
package protoregen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/linker"
	gengo "google.golang.org/protobuf/cmd/protoc-gen-go/internal_gengo"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/sluicerpc/sluice/internal/sluicegen"
)

// Files lists the .proto files to generate, relative to the repository root.
var Files = []string{
	"examples/echo/echo.proto",
}

// Module is this repository's Go module path. Generated files are placed by
// their go_package relative to it (protoc's "module=" option), so an
// import path github.com/sluicerpc/sluice/x/ypb lands in x/ypb.
const Module = "github.com/sluicerpc/sluice"

// Generators are the plugins Generate runs, in order: protoc-gen-go, then
// protoc-gen-sluice.
var Generators = []func(*protogen.Plugin) error{goGenerate, sluicegen.Generate}

// goGenerate is protoc-gen-go's main loop.
func goGenerate(gen *protogen.Plugin) error {
	for _, f := range gen.Files {
		if f.Generate {
			gengo.GenerateFile(gen, f)
		}
	}
	gen.SupportedFeatures = gengo.SupportedFeatures
	gen.SupportedEditionsMinimum = gengo.SupportedEditionsMinimum
	gen.SupportedEditionsMaximum = gengo.SupportedEditionsMaximum
	return nil
}

// Generate compiles files (paths relative to root, which is also the only
// import path besides the well-known types) and returns the content of every
// generated file keyed by its slash-separated path relative to root.
func Generate(ctx context.Context, root string, files ...string) (map[string][]byte, error) {
	req, err := Request(ctx, &protocompile.SourceResolver{ImportPaths: []string{root}}, files...)
	if err != nil {
		return nil, err
	}
	req.Parameter = proto.String("module=" + Module)
	out := make(map[string][]byte)
	for _, g := range Generators {
		resp, err := Run(req, g)
		if err != nil {
			return nil, err
		}
		if resp.Error != nil {
			return nil, errors.New(resp.GetError())
		}
		for _, f := range resp.File {
			if f.InsertionPoint != nil {
				return nil, fmt.Errorf("protoregen: %s: insertion points are not supported", f.GetName())
			}
			if _, dup := out[f.GetName()]; dup {
				return nil, fmt.Errorf("protoregen: %s generated twice", f.GetName())
			}
			out[f.GetName()] = []byte(f.GetContent())
		}
	}
	return out, nil
}

// Request compiles files, found through resolver (which WithStandardImports
// extends with the well-known types), into a plugin request like protoc's:
// files as file_to_generate, and every file they need in proto_file,
// dependencies first, with comments. Parameter and compiler version are
// left unset.
func Request(ctx context.Context, resolver protocompile.Resolver, files ...string) (*pluginpb.CodeGeneratorRequest, error) {
	c := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(resolver),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	compiled, err := c.Compile(ctx, files...)
	if err != nil {
		return nil, fmt.Errorf("protoregen: %w", err)
	}
	req := &pluginpb.CodeGeneratorRequest{FileToGenerate: files}
	seen := make(map[string]bool)
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := range imports.Len() {
			add(imports.Get(i).FileDescriptor)
		}
		req.ProtoFile = append(req.ProtoFile, fileProto(fd))
	}
	for _, fd := range compiled {
		add(fd)
	}
	return req, nil
}

// fileProto returns fd as protocompile built it, or converts it if it came
// from elsewhere (the well-known types).
func fileProto(fd protoreflect.FileDescriptor) *descriptorpb.FileDescriptorProto {
	if r, ok := fd.(linker.Result); ok {
		return r.FileDescriptorProto()
	}
	return protodesc.ToFileDescriptorProto(fd)
}

// Run runs one plugin on req as protoc would: an error from generate is
// reported in the response, not returned. The returned error means req was
// unusable.
func Run(req *pluginpb.CodeGeneratorRequest, generate func(*protogen.Plugin) error) (*pluginpb.CodeGeneratorResponse, error) {
	gen, err := protogen.Options{}.New(req)
	if err != nil {
		return nil, fmt.Errorf("protoregen: %w", err)
	}
	if err := generate(gen); err != nil {
		gen.Error(err)
	}
	return gen.Response(), nil
}

// Root returns the repository root: the nearest directory at or above dir
// holding a go.mod.
func Root(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("protoregen: no go.mod at or above the working directory")
		}
		dir = parent
	}
}
