package sluicegen_test

import (
	"context"
	"fmt"
	"go/ast"
	"go/format"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/sluicerpc/sluice/internal/protoregen"
	"github.com/sluicerpc/sluice/internal/sluicegen"
)

// run compiles the in-memory sources, generates toGenerate with gen and
// returns the plugin response.
func run(t *testing.T, gen func(*protogen.Plugin) error, srcs map[string]string, toGenerate ...string) *pluginpb.CodeGeneratorResponse {
	t.Helper()
	resolver := &protocompile.SourceResolver{Accessor: protocompile.SourceAccessorFromMap(srcs)}
	req, err := protoregen.Request(context.Background(), resolver, toGenerate...)
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	req.Parameter = proto.String("paths=source_relative")
	resp, err := protoregen.Run(req, gen)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return resp
}

func fileNames(resp *pluginpb.CodeGeneratorResponse) []string {
	var names []string
	for _, f := range resp.File {
		names = append(names, f.GetName())
	}
	slices.Sort(names)
	return names
}

func TestGenerateRejectsStreaming(t *testing.T) {
	tests := []struct {
		name string
		rpc  string
		kind string
	}{
		{"server", "rpc Watch(Req) returns (stream Resp);", "server-streaming"},
		{"client", "rpc Watch(stream Req) returns (Resp);", "client-streaming"},
		{"bidi", "rpc Watch(stream Req) returns (stream Resp);", "bidirectional-streaming"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := `syntax = "proto3";
package sluice.x.v1;
option go_package = "example.com/x/xpb";
message Req {}
message Resp {}
service Svc {
  rpc Get(Req) returns (Resp);
  ` + tt.rpc + `
}
`
			resp := run(t, sluicegen.Generate, map[string]string{"x.proto": src}, "x.proto")
			want := "protoc-gen-sluice: method sluice.x.v1.Svc.Watch is " + tt.kind + "; Sluice generates unary methods only"
			if got := resp.GetError(); got != want {
				t.Errorf("error = %q, want %q", got, want)
			}
			if len(resp.File) != 0 {
				t.Errorf("generated %v alongside the error, want nothing", fileNames(resp))
			}
		})
	}
}

func TestGenerateOnlyFilesWithServices(t *testing.T) {
	srcs := map[string]string{
		"types.proto": `syntax = "proto3";
package sluice.t.v1;
option go_package = "example.com/t/tpb";
message Req {}
message Resp {}
`,
		"svc.proto": `syntax = "proto3";
package sluice.t.v1;
option go_package = "example.com/t/tpb";
import "types.proto";
service Svc { rpc Get(Req) returns (Resp); }
`,
	}
	tests := []struct {
		name       string
		toGenerate []string
		want       []string
	}{
		{"no services", []string{"types.proto"}, nil},
		{"services", []string{"svc.proto"}, []string{"svc_sluice.pb.go"}},
		{"both", []string{"types.proto", "svc.proto"}, []string{"svc_sluice.pb.go"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := run(t, sluicegen.Generate, srcs, tt.toGenerate...)
			if resp.Error != nil {
				t.Fatalf("error: %s", resp.GetError())
			}
			if got := fileNames(resp); !slices.Equal(got, tt.want) {
				t.Errorf("files = %q, want %q", got, tt.want)
			}
			if got, want := resp.GetSupportedFeatures(), uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL); got != want {
				t.Errorf("supported features = %d, want %d", got, want)
			}
		})
	}
}

const libraryProto = `syntax = "proto3";
package sluice.library.v1;
option go_package = "example.com/library/librarypb";

import "google/protobuf/empty.proto";

message Book { string name = 1; optional string title = 2; }
message GetBookRequest { string name = 1; }

// Library serves books.
service Library {
  // GetBook returns one book by name.
  rpc GetBook(GetBookRequest) returns (Book);
  rpc Burn(GetBookRequest) returns (google.protobuf.Empty) { option deprecated = true; }
}

service Shelf {
  option deprecated = true;
  rpc Count(google.protobuf.Empty) returns (google.protobuf.Empty);
}
`

func TestGenerate(t *testing.T) {
	srcs := map[string]string{"library.proto": libraryProto}
	resp := run(t, sluicegen.Generate, srcs, "library.proto")
	if resp.Error != nil {
		t.Fatalf("error: %s", resp.GetError())
	}
	if got, want := fileNames(resp), []string{"library_sluice.pb.go"}; !slices.Equal(got, want) {
		t.Fatalf("files = %q, want %q", got, want)
	}
	src := resp.File[0].GetContent()

	formatted, err := format.Source([]byte(src))
	if err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, src)
	}
	if string(formatted) != src {
		t.Errorf("output is not gofmt'd")
	}

	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "library_sluice.pb.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	if !ast.IsGenerated(f) {
		t.Errorf("output lacks the // Code generated ... DO NOT EDIT. line")
	}
	if f.Name.Name != "librarypb" {
		t.Errorf("package = %s, want librarypb", f.Name.Name)
	}

	decls := declared(f)
	for _, name := range []string{
		"Library_ServiceName", "Library_GetBook_FullMethodName", "Library_Burn_FullMethodName",
		"LibraryClient", "NewLibraryClient", "LibraryServer", "UnimplementedLibraryServer",
		"RegisterLibraryServer", "Library_ServiceDesc",
		"_Library_GetBook_Handler", "_Library_Burn_Handler",
		"Shelf_ServiceName", "Shelf_Count_FullMethodName",
		"ShelfClient", "NewShelfClient", "ShelfServer", "UnimplementedShelfServer",
		"RegisterShelfServer", "Shelf_ServiceDesc", "_Shelf_Count_Handler",
	} {
		if _, ok := decls[name]; !ok {
			t.Errorf("%s is not declared", name)
		}
	}

	wantConsts := map[string]string{
		"Library_ServiceName":            "sluice.library.v1.Library",
		"Library_GetBook_FullMethodName": "/sluice.library.v1.Library/GetBook",
		"Library_Burn_FullMethodName":    "/sluice.library.v1.Library/Burn",
		"Shelf_ServiceName":              "sluice.library.v1.Shelf",
		"Shelf_Count_FullMethodName":     "/sluice.library.v1.Shelf/Count",
	}
	for name, want := range wantConsts {
		if got := stringConst(decls[name]); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}

	for _, tt := range []struct{ decl, wantDoc string }{
		{"LibraryClient", "Library serves books."},
		{"LibraryServer", "Library serves books."},
		{"ShelfClient", "Deprecated: Do not use."},
		{"ShelfServer", "Deprecated: Do not use."},
		{"NewShelfClient", "Deprecated: Do not use."},
		{"RegisterShelfServer", "Deprecated: Do not use."},
	} {
		if doc := docOf(decls[tt.decl]); !strings.Contains(doc, tt.wantDoc) {
			t.Errorf("doc of %s = %q, want it to contain %q", tt.decl, doc, tt.wantDoc)
		}
	}
	for _, iface := range []string{"LibraryClient", "LibraryServer"} {
		docs := methodDocs(decls[iface])
		if got, want := docs["GetBook"], "GetBook returns one book by name.\n"; got != want {
			t.Errorf("%s.GetBook doc = %q, want %q", iface, got, want)
		}
		if got, want := docs["Burn"], "Deprecated: Do not use.\n"; got != want {
			t.Errorf("%s.Burn doc = %q, want %q", iface, got, want)
		}
	}

	// The ServiceDesc lists proto method names and the source file.
	if got, want := descMethods(decls["Library_ServiceDesc"]), []string{"GetBook", "Burn"}; !slices.Equal(got, want) {
		t.Errorf("Library_ServiceDesc methods = %q, want %q", got, want)
	}
	if !strings.Contains(src, `Metadata: "library.proto",`) {
		t.Errorf("Library_ServiceDesc lacks Metadata \"library.proto\"")
	}
}

// TestGenerateTypeChecks type-checks the stubs together with protoc-gen-go's
// messages against the real client, server and status packages.
func TestGenerateTypeChecks(t *testing.T) {
	srcs := map[string]string{"library.proto": libraryProto}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, gen := range protoregen.Generators {
		resp := run(t, gen, srcs, "library.proto")
		if resp.Error != nil {
			t.Fatalf("error: %s", resp.GetError())
		}
		for _, gf := range resp.File {
			f, err := parser.ParseFile(fset, gf.GetName(), gf.GetContent(), 0)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
	}
	conf := types.Config{Importer: exportImporter(t, fset, files)}
	pkg, err := conf.Check("example.com/library/librarypb", fset, files, nil)
	if err != nil {
		t.Fatalf("generated code does not type-check: %v", err)
	}

	// The Unimplemented server satisfies the server interface.
	server := pkg.Scope().Lookup("LibraryServer").Type().Underlying().(*types.Interface)
	unimpl := pkg.Scope().Lookup("UnimplementedLibraryServer").Type()
	if !types.Implements(unimpl, server) {
		t.Errorf("UnimplementedLibraryServer does not implement LibraryServer")
	}
}

// exportImporter returns an importer reading the compiler's export data for
// the packages files import, as listed by the go command.
func exportImporter(t *testing.T, fset *token.FileSet, files []*ast.File) types.Importer {
	t.Helper()
	args := []string{"list", "-export", "-deps", "-f", "{{.ImportPath}}={{.Export}}"}
	for _, f := range files {
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			args = append(args, path)
		}
	}
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	exports := make(map[string]string)
	for line := range strings.Lines(string(out)) {
		path, file, _ := strings.Cut(strings.TrimSpace(line), "=")
		exports[path] = file
	}
	return importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok || file == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(file)
	})
}

// declared maps each top-level name in f to the declaration (with doc) that
// declares it.
func declared(f *ast.File) map[string]declInfo {
	m := make(map[string]declInfo)
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil {
				m[d.Name.Name] = declInfo{doc: d.Doc}
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					m[s.Name.Name] = declInfo{doc: d.Doc, spec: s}
				case *ast.ValueSpec:
					for i, n := range s.Names {
						var v ast.Expr
						if i < len(s.Values) {
							v = s.Values[i]
						}
						m[n.Name] = declInfo{doc: d.Doc, value: v}
					}
				}
			}
		}
	}
	return m
}

type declInfo struct {
	doc   *ast.CommentGroup
	spec  *ast.TypeSpec
	value ast.Expr
}

func docOf(d declInfo) string { return d.doc.Text() }

func stringConst(d declInfo) string {
	lit, ok := d.value.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return ""
	}
	s, _ := strconv.Unquote(lit.Value)
	return s
}

// methodDocs returns the doc comment of each method of an interface type.
func methodDocs(d declInfo) map[string]string {
	m := make(map[string]string)
	if d.spec == nil {
		return m
	}
	it, ok := d.spec.Type.(*ast.InterfaceType)
	if !ok {
		return m
	}
	for _, f := range it.Methods.List {
		for _, n := range f.Names {
			m[n.Name] = f.Doc.Text()
		}
	}
	return m
}

// descMethods returns the MethodName of each entry in a ServiceDesc literal.
func descMethods(d declInfo) []string {
	lit, ok := d.value.(*ast.CompositeLit)
	if !ok {
		return nil
	}
	var names []string
	for _, e := range lit.Elts {
		kv, ok := e.(*ast.KeyValueExpr)
		if !ok || fmt.Sprint(kv.Key) != "Methods" {
			continue
		}
		for _, m := range kv.Value.(*ast.CompositeLit).Elts {
			for _, f := range m.(*ast.CompositeLit).Elts {
				kv := f.(*ast.KeyValueExpr)
				if fmt.Sprint(kv.Key) == "MethodName" {
					s, _ := strconv.Unquote(kv.Value.(*ast.BasicLit).Value)
					names = append(names, s)
				}
			}
		}
	}
	return names
}

func ExampleGenerate() {
	srcs := map[string]string{"echo/echo.proto": `syntax = "proto3";
package echo.v1;
option go_package = "example.com/echo/echopb";
message Msg { string text = 1; }
service Echo { rpc Say(Msg) returns (Msg); }
`}
	resolver := &protocompile.SourceResolver{Accessor: protocompile.SourceAccessorFromMap(srcs)}
	req, err := protoregen.Request(context.Background(), resolver, "echo/echo.proto")
	if err != nil {
		panic(err)
	}
	req.Parameter = proto.String("paths=source_relative")
	resp, err := protoregen.Run(req, sluicegen.Generate)
	if err != nil {
		panic(err)
	}
	for _, f := range resp.File {
		fmt.Println(f.GetName())
	}
	// Output:
	// echo/echo_sluice.pb.go
}
