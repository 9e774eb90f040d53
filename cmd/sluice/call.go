package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/discovery/etcd"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

const callUsage = `usage: sluice call [flags] TARGET pkg.Service/Method [JSON]

Calls one method with a JSON request (default {}; - reads stdin) and prints
the JSON reply. The request and reply types come from the server's
reflection service. TARGET is anything the client accepts: host:port, a
comma-separated list, static:///a,b, etcd:///name.

flags:
`

// headerFlag collects repeated -H 'key: value' flags.
type headerFlag []string

func (h *headerFlag) String() string { return strings.Join(*h, ", ") }

func (h *headerFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("header %q: want 'key: value'", v)
	}
	*h = append(*h, strings.TrimSpace(k), strings.TrimSpace(val))
	return nil
}

// call runs `sluice call`; the exit code is 0 on success, 1 when the call
// failed (the code and message go to stderr), 2 for bad usage.
func call(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, callUsage)
		fs.PrintDefaults()
	}
	var headers headerFlag
	fs.Var(&headers, "H", "request metadata 'key: value' (repeatable)")
	protoName := fs.String("protocol", "native", "wire protocol: native, grpc or connect")
	timeout := fs.Duration("timeout", 10*time.Second, "deadline of the call, reflection included")
	etcdEndpoints := fs.String("etcd", "", "etcd endpoints for etcd:///name targets (default $SLUICE_ETCD, else 127.0.0.1:2379)")
	// Flags may come before, between or after the positional arguments.
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) < 2 || len(pos) > 3 {
		fs.Usage()
		return 2
	}
	protocol, err := client.ParseProtocol(*protoName)
	if err != nil {
		fmt.Fprintln(stderr, "sluice call:", err)
		return 2
	}
	target, method := pos[0], strings.TrimPrefix(pos[1], "/")
	body := "{}"
	if len(pos) == 3 {
		body = pos[2]
		if body == "-" {
			b, err := io.ReadAll(stdin)
			if err != nil {
				fmt.Fprintln(stderr, "sluice call: reading stdin:", err)
				return 2
			}
			body = string(b)
		}
	}
	svcName, methodName, ok := strings.Cut(method, "/")
	if !ok || svcName == "" || methodName == "" {
		fmt.Fprintf(stderr, "sluice call: method %q: want pkg.Service/Method\n", pos[1])
		return 2
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	copts := []client.Option{client.WithProtocol(protocol)}
	if *etcdEndpoints != "" {
		copts = append(copts, client.WithEtcdEndpoints(etcd.Endpoints(*etcdEndpoints)...))
	}
	c, err := client.New(target, copts...)
	if err != nil {
		fmt.Fprintln(stderr, "sluice call:", err)
		return 2
	}
	defer c.Close()

	md, err := describe(ctx, c, target, *etcdEndpoints, protocol, svcName, methodName)
	if err != nil {
		return fail(stderr, "reflection", err)
	}
	req := dynamicpb.NewMessage(md.Input())
	if err := protojson.Unmarshal([]byte(body), req); err != nil {
		fmt.Fprintf(stderr, "sluice call: request is not a %s: %v\n", md.Input().FullName(), err)
		return 2
	}
	resp := dynamicpb.NewMessage(md.Output())
	if len(headers) > 0 {
		ctx = metadata.AppendToOutgoing(ctx, headers...)
	}
	var replyMD metadata.MD
	if err := c.Invoke(ctx, "/"+svcName+"/"+methodName, req, resp, client.ResponseMetadata(&replyMD)); err != nil {
		return fail(stderr, "", err)
	}
	out, err := protojson.Marshal(resp)
	var pretty bytes.Buffer
	if err == nil {
		err = json.Indent(&pretty, out, "", "  ")
	}
	if err != nil {
		fmt.Fprintln(stderr, "sluice call: printing the reply:", err)
		return 1
	}
	fmt.Fprintln(stdout, pretty.String())
	return 0
}

// fail prints a failed call's code and message; exit code 1.
func fail(stderr io.Writer, stage string, err error) int {
	st := status.Convert(err)
	if stage != "" {
		stage += ": "
	}
	fmt.Fprintf(stderr, "sluice call: %sERROR %s: %s\n", stage, st.Code(), st.Message())
	return 1
}

// describe finds the method's descriptor through the server's reflection
// service: the one-question-per-call form over the native protocol and
// Connect, the standard stream over gRPC.
func describe(ctx context.Context, c *client.Client, target, etcdEndpoints string, protocol client.Protocol, svc, method string) (protoreflect.MethodDescriptor, error) {
	ask := func(req *reflectionpb.ServerReflectionRequest) (*reflectionpb.ServerReflectionResponse, error) {
		var resp reflectionpb.ServerReflectionResponse
		err := c.Invoke(ctx, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", req, &resp)
		return &resp, err
	}
	if protocol == client.GRPC {
		// The standard reflection stream needs a channel to one instance.
		addr, err := firstAddr(ctx, target, etcdEndpoints)
		if err != nil {
			return nil, err
		}
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		defer cc.Close()
		stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
		if err != nil {
			return nil, err
		}
		defer stream.CloseSend()
		ask = func(req *reflectionpb.ServerReflectionRequest) (*reflectionpb.ServerReflectionResponse, error) {
			if err := stream.Send(req); err != nil {
				return nil, err
			}
			return stream.Recv()
		}
	}
	files, err := fetchFiles(ask, svc)
	if err != nil {
		return nil, err
	}
	d, err := files.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "service %s not found: %v", svc, err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "%s is not a service", svc)
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return nil, status.Errorf(codes.Unimplemented, "service %s has no method %s", svc, method)
	}
	if md.IsStreamingClient() || md.IsStreamingServer() {
		return nil, status.Errorf(codes.Unimplemented, "%s/%s is streaming; sluice call makes unary calls", svc, method)
	}
	return md, nil
}

// firstAddr resolves target to one instance address.
func firstAddr(ctx context.Context, target, etcdEndpoints string) (string, error) {
	name, ok := strings.CutPrefix(target, "etcd:///")
	if !ok {
		addr, _, _ := strings.Cut(strings.TrimPrefix(target, "static:///"), ",")
		return strings.TrimSpace(addr), nil
	}
	r, err := etcd.NewResolver(etcd.Config{Endpoints: etcd.Endpoints(etcdEndpoints)})
	if err != nil {
		return "", err
	}
	defer r.Close()
	var addr string
	w, err := r.Resolve(ctx, name, func(ins []discovery.Instance) {
		if len(ins) > 0 && addr == "" {
			addr = ins[0].Addr
		}
	})
	if err != nil {
		return "", err
	}
	w.Close()
	if addr == "" {
		return "", status.Errorf(codes.Unavailable, "no instances of %s in etcd", name)
	}
	return addr, nil
}

// fetchFiles asks for the file defining symbol and then for every
// dependency not received yet, and builds a registry from them.
func fetchFiles(ask func(*reflectionpb.ServerReflectionRequest) (*reflectionpb.ServerReflectionResponse, error), symbol string) (*protoregistry.Files, error) {
	got := map[string]*descriptorpb.FileDescriptorProto{}
	add := func(resp *reflectionpb.ServerReflectionResponse) error {
		if e := resp.GetErrorResponse(); e != nil {
			return status.Errorf(codesOf(e.ErrorCode), "%s", e.ErrorMessage)
		}
		for _, b := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
			fd := new(descriptorpb.FileDescriptorProto)
			if err := proto.Unmarshal(b, fd); err != nil {
				return err
			}
			got[fd.GetName()] = fd
		}
		return nil
	}
	resp, err := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: symbol}})
	if err != nil {
		return nil, err
	}
	if err := add(resp); err != nil {
		return nil, err
	}
	for {
		var missing string
		for _, fd := range got {
			for _, dep := range fd.GetDependency() {
				if got[dep] == nil {
					missing = dep
				}
			}
		}
		if missing == "" {
			break
		}
		resp, err := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileByFilename{FileByFilename: missing}})
		if err != nil {
			return nil, err
		}
		if err := add(resp); err != nil {
			return nil, err
		}
		if got[missing] == nil {
			return nil, errors.New("reflection did not return " + missing)
		}
	}
	set := &descriptorpb.FileDescriptorSet{}
	for _, fd := range got {
		set.File = append(set.File, fd)
	}
	return protodesc.NewFiles(set)
}

// codesOf turns a reflection error code (a gRPC code number) into a code.
func codesOf(n int32) codes.Code {
	if c, ok := status.ParseCode(strconv.Itoa(int(n))); ok {
		return c
	}
	return codes.Unknown
}
