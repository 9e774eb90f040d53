package ttheader

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
)

// Exception type ids, as Kitex (and Thrift's TApplicationException) number them.
const (
	ExcUnknown         = 0
	ExcUnknownMethod   = 1
	ExcInvalidMsgType  = 2
	ExcWrongMethodName = 3
	ExcBadSeqID        = 4
	ExcMissingResult   = 5
	ExcInternalError   = 6
	ExcProtocolError   = 7
	ExcUnknownService  = 20 // Kitex: no registered service has that name
	ExcNoServiceName   = 21 // Kitex: the call named no service and one is required
)

// AppendException appends the protobuf exception body
// {int32 type_id = 1; string message = 2}.
func AppendException(buf []byte, typeID int32, msg string) []byte {
	if typeID != 0 {
		buf = protowire.AppendTag(buf, 1, protowire.VarintType)
		buf = protowire.AppendVarint(buf, uint64(int64(typeID)))
	}
	if msg != "" {
		buf = protowire.AppendTag(buf, 2, protowire.BytesType)
		buf = protowire.AppendString(buf, msg)
	}
	return buf
}

// DecodeException parses an exception body. Unknown fields are skipped.
func DecodeException(b []byte) (typeID int32, msg string, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, "", malformed("exception body: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, "", malformed("exception type_id: %v", protowire.ParseError(n))
			}
			typeID, b = int32(v), b[n:]
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, "", malformed("exception message: %v", protowire.ParseError(n))
			}
			msg, b = string(v), b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return 0, "", malformed("exception field %d: %v", num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	return typeID, msg, nil
}

// ExceptionType returns the exception type id Sluice sends for a gRPC code.
// Kitex clients understand these; Sluice clients read the exact code from
// the KeyStatus header instead.
func ExceptionType(c codes.Code) int32 {
	switch c {
	case codes.Unimplemented:
		return ExcUnknownMethod
	case codes.Unknown:
		return ExcUnknown
	case codes.InvalidArgument, codes.DataLoss:
		return ExcProtocolError
	}
	return ExcInternalError
}

// CodeOf maps an exception type id to a gRPC code, for replies from peers
// (Kitex servers) that send no KeyStatus header.
func CodeOf(typeID int32) codes.Code {
	switch typeID {
	case ExcUnknownMethod, ExcWrongMethodName, ExcUnknownService, ExcNoServiceName:
		return codes.Unimplemented
	case ExcUnknown:
		return codes.Unknown
	case ExcProtocolError, ExcInvalidMsgType:
		return codes.InvalidArgument
	}
	return codes.Internal
}
