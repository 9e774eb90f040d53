package trace

import (
	"net"
	"strconv"
	"sync"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/status"
	"go.opentelemetry.io/otel/attribute"
	oteltrace "go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
)

// Attribute keys of the RPC semantic conventions (classic: up to v1.37;
// current: v1.40 and later) and of the general network ones.
const (
	keySystem          = attribute.Key("rpc.system")
	keyService         = attribute.Key("rpc.service")
	keyMethod          = attribute.Key("rpc.method")
	keyGRPCStatusCode  = attribute.Key("rpc.grpc.status_code")
	keyConnectError    = attribute.Key("rpc.connect_rpc.error_code")
	keySystemName      = attribute.Key("rpc.system.name")
	keyResponseStatus  = attribute.Key("rpc.response.status_code")
	keyErrorType       = attribute.Key("error.type")
	keyServerAddress   = attribute.Key("server.address")
	keyServerPort      = attribute.Key("server.port")
	keyPeerAddress     = attribute.Key("network.peer.address")
	keyPeerPort        = attribute.Key("network.peer.port")
	maxSpanAttributes  = 12
	protocolGRPC       = "grpc"
	protocolConnect    = "connect"
	classicConnectName = "connect_rpc"
	currentConnectName = "connectrpc"
)

// attrBufs holds buffers for the attributes of a finished span, which
// the span copies: a sampled call's spans need no allocation for them.
var attrBufs = sync.Pool{New: func() any { return new([maxSpanAttributes]attribute.KeyValue) }}

// setAttributes sets the attributes of a finished call's span.
func (t *Tracing) setAttributes(span oteltrace.Span, info *callinfo.Info, kind oteltrace.SpanKind, code codes.Code, failed bool) {
	buf := attrBufs.Get().(*[maxSpanAttributes]attribute.KeyValue)
	span.SetAttributes(t.appendAttributes(buf[:0], info, kind, code, failed)...)
	*buf = [maxSpanAttributes]attribute.KeyValue{} // keeps no strings alive
	attrBufs.Put(buf)
}

// appendAttributes appends the attributes of a finished call's span to a,
// at most maxSpanAttributes.
func (t *Tracing) appendAttributes(a []attribute.KeyValue, info *callinfo.Info, kind oteltrace.SpanKind, code codes.Code, failed bool) []attribute.KeyValue {
	if t.attrs == AttributesClassic || t.attrs == AttributesBoth {
		a = append(a,
			keySystem.String(t.system(info.Protocol, classicConnectName)),
			keyService.String(info.Service),
			keyGRPCStatusCode.Int(int(code)),
		)
		if t.attrs == AttributesClassic {
			a = append(a, keyMethod.String(info.Method))
		}
		if info.Protocol == protocolConnect && code != codes.OK {
			a = append(a, keyConnectError.String(status.ConnectName(code)))
		}
	}
	if t.attrs == AttributesCurrent || t.attrs == AttributesBoth {
		a = append(a,
			keySystemName.String(t.system(info.Protocol, currentConnectName)),
			keyMethod.String(t.spanName(info)),
			keyResponseStatus.String(canonicalName(code)),
		)
		if failed {
			a = append(a, keyErrorType.String(canonicalName(code)))
		}
	}
	if info.Peer != "" {
		host, port := splitHostPort(info.Peer)
		if kind == oteltrace.SpanKindClient {
			a = append(a, keyServerAddress.String(host))
			if port > 0 {
				a = append(a, keyServerPort.Int(port))
			}
		} else {
			a = append(a, keyPeerAddress.String(host))
			if port > 0 {
				a = append(a, keyPeerPort.Int(port))
			}
		}
	}
	return a
}

// system names the RPC system of a protocol.
func (t *Tracing) system(protocol, connect string) string {
	switch protocol {
	case protocolGRPC:
		return protocolGRPC
	case protocolConnect:
		return connect
	}
	return t.native
}

// splitHostPort splits "host:port"; an address without a port is all host.
func splitHostPort(addr string) (string, int) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return host, 0
	}
	return host, port
}

// canonicalName is the gRPC name of c as the semantic conventions spell
// it ("UNAVAILABLE"), from the one code table.
func canonicalName(c codes.Code) string { return status.Name(c) }
