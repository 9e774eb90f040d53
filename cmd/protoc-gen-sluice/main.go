// Command protoc-gen-sluice is a protoc plugin that generates Sluice client
// and server stubs for the unary services in .proto files. Run it next to
// protoc-gen-go, which generates the messages:
//
//	protoc --go_out=. --go_opt=paths=source_relative \
//	       --sluice_out=. --sluice_opt=paths=source_relative \
//	       echo.proto
//
// Streaming methods are rejected. See package internal/sluicegen for what is
// generated.
package main

import (
	"fmt"
	"os"

	"google.golang.org/protobuf/compiler/protogen"

	"github.com/sluicerpc/sluice/internal/sluicegen"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		fmt.Println("protoc-gen-sluice", sluicegen.Version)
		return
	}
	protogen.Options{}.Run(sluicegen.Generate)
}
