// Package ttheader encodes and decodes the native wire format: TTHeader
// framing (the transport header CloudWeGo Kitex uses) around a
// KitexProtobuf payload. Decoding never allocates: a decoded Header and
// Payload point into the frame they were read from.
//
// A frame, all integers big-endian:
//
//	u32 length (frame size - 4) | u16 magic 0x1000 | u16 flags | u32 seqID
//	u16 header size / 4 | u8 protocol | u8 transform count | transform ids
//	info sections | zero padding to 4 bytes | payload
//
// The payload:
//
//	u32 length (excluding itself) | u32 0x9001_0000|msgType
//	u32 name length | name | u32 seqID | protobuf bytes
//
// Writing a call:
//
//	h := ttheader.Header{SeqID: 1}
//	h.AddString(ttheader.KeyServiceName, "sluice.examples.echo.v1.EchoService")
//	buf, frame, err := ttheader.AppendHeader(nil, &h)
//	buf, pl := ttheader.AppendPayloadHeader(buf, ttheader.Call, "Echo", 1)
//	buf = append(buf, body...)
//	ttheader.FinishPayload(buf, pl)
//	buf, err := ttheader.FinishFrame(buf, frame, ttheader.DefaultMaxFrameSize)
package ttheader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Wire constants.
const (
	Magic        = 0x1000 // bytes 4-5 of every frame
	PayloadMagic = 0x9001 // high half of the payload's second word

	// DefaultMaxFrameSize bounds a frame (length word included) unless configured otherwise.
	DefaultMaxFrameSize = 4 << 20

	// FixedHeaderLen is the length word plus the fixed part of the header.
	FixedHeaderLen = 14
)

// Info section ids.
const (
	InfoPadding     = 0x00
	InfoKeyValue    = 0x01 // string keys, string values
	InfoIntKeyValue = 0x10 // u16 keys, string values
	InfoACLToken    = 0x11 // one string
)

// Int keys Sluice reads or writes (Kitex's transmeta numbering).
const (
	KeyTransportType = 1
	KeyFromService   = 3
	KeyToService     = 6
	KeyToMethod      = 9
	KeyRPCTimeout    = 12 // milliseconds, decimal
	KeyMsgType       = 22
)

// String keys Sluice reads or writes.
const (
	KeyServiceName = "isn"         // the callee's service name (Kitex: IDL service name)
	KeyStatus      = "sluice-code" // gRPC code of an error reply, decimal
)

// MsgType is the payload's message type.
type MsgType uint8

// Message types.
const (
	Call      MsgType = 1
	Reply     MsgType = 2
	Exception MsgType = 3
	Oneway    MsgType = 4
)

func (t MsgType) String() string {
	switch t {
	case Call:
		return "call"
	case Reply:
		return "reply"
	case Exception:
		return "exception"
	case Oneway:
		return "oneway"
	}
	return "msgtype(" + strconv.Itoa(int(t)) + ")"
}

// Decoding errors. Every decode error wraps ErrMalformed.
var (
	ErrMalformed = errors.New("ttheader: malformed frame")
	ErrTooLarge  = errors.New("ttheader: frame too large")
)

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, a...)...)
}

// KV is a string key/value pair, pointing into the frame when decoded.
type KV struct {
	Key, Value []byte
}

// IntKV is an int-key/value pair, pointing into the frame when decoded.
type IntKV struct {
	Key   uint16
	Value []byte
}

// Header is a TTHeader. Reuse one across frames: Reset keeps the slices'
// capacity so steady-state decoding does not allocate.
type Header struct {
	Flags      uint16
	SeqID      uint32
	Protocol   uint8
	Transforms []byte
	Strings    []KV
	Ints       []IntKV
	Token      []byte
}

// Reset clears h, keeping capacity.
func (h *Header) Reset() {
	h.Flags, h.SeqID, h.Protocol = 0, 0, 0
	h.Transforms = h.Transforms[:0]
	h.Strings = h.Strings[:0]
	h.Ints = h.Ints[:0]
	h.Token = nil
}

// AddString appends a string key/value. The strings are not copied until encoding.
func (h *Header) AddString(k, v string) {
	h.Strings = append(h.Strings, KV{Key: s2b(k), Value: s2b(v)})
}

// AddInt appends an int-key/value.
func (h *Header) AddInt(k uint16, v []byte) {
	h.Ints = append(h.Ints, IntKV{Key: k, Value: v})
}

// String returns the value of string key k, or nil.
func (h *Header) String(k string) []byte {
	for i := range h.Strings {
		if string(h.Strings[i].Key) == k {
			return h.Strings[i].Value
		}
	}
	return nil
}

// Int returns the value of int key k, or nil.
func (h *Header) Int(k uint16) []byte {
	for i := range h.Ints {
		if h.Ints[i].Key == k {
			return h.Ints[i].Value
		}
	}
	return nil
}

// FrameSize returns the size of the frame that starts with b (length word
// included), or 0 when fewer than 4 bytes are given.
func FrameSize(b []byte) int {
	if len(b) < 4 {
		return 0
	}
	return int(binary.BigEndian.Uint32(b)) + 4
}

// IsFrameStart reports whether b (at least 6 bytes) begins like a TTHeader frame.
func IsFrameStart(b []byte) bool {
	return len(b) >= 6 && binary.BigEndian.Uint16(b[4:]) == Magic
}

// CheckSize validates a frame's declared size against max before the body is read.
func CheckSize(size, max int) error {
	if size < FixedHeaderLen {
		return malformed("frame size %d below the %d-byte header", size, FixedHeaderLen)
	}
	if max > 0 && size > max {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, max)
	}
	return nil
}

// DecodeHeader parses the frame (length word included) into h and returns
// the payload. h's slices point into frame.
func DecodeHeader(frame []byte, h *Header) (payload []byte, err error) {
	h.Reset()
	if len(frame) < FixedHeaderLen {
		return nil, malformed("%d bytes, need %d", len(frame), FixedHeaderLen)
	}
	if n := uint64(binary.BigEndian.Uint32(frame)) + 4; n != uint64(len(frame)) {
		return nil, malformed("length word says %d bytes, frame has %d", n, len(frame))
	}
	if m := binary.BigEndian.Uint16(frame[4:]); m != Magic {
		return nil, malformed("magic %#04x, want %#04x", m, Magic)
	}
	h.Flags = binary.BigEndian.Uint16(frame[6:])
	h.SeqID = binary.BigEndian.Uint32(frame[8:])
	hsize := int(binary.BigEndian.Uint16(frame[12:])) * 4
	end := FixedHeaderLen + hsize
	if hsize < 2 || end > len(frame) {
		return nil, malformed("header size %d does not fit frame of %d bytes", hsize, len(frame))
	}
	b := frame[FixedHeaderLen:end]
	h.Protocol = b[0]
	nt := int(b[1])
	b = b[2:]
	if nt > len(b) {
		return nil, malformed("%d transforms in %d header bytes", nt, len(b))
	}
	h.Transforms = append(h.Transforms, b[:nt]...)
	b = b[nt:]
	for len(b) > 0 {
		id := b[0]
		b = b[1:]
		switch id {
		case InfoPadding:
			// Padding runs to the end of the header.
			for _, c := range b {
				if c != 0 {
					return nil, malformed("non-zero byte after padding")
				}
			}
			b = nil
		case InfoKeyValue:
			n, rest, err := u16(b)
			if err != nil {
				return nil, err
			}
			b = rest
			for i := 0; i < n; i++ {
				var k, v []byte
				if k, b, err = str16(b); err != nil {
					return nil, err
				}
				if v, b, err = str16(b); err != nil {
					return nil, err
				}
				h.Strings = append(h.Strings, KV{Key: k, Value: v})
			}
		case InfoIntKeyValue:
			n, rest, err := u16(b)
			if err != nil {
				return nil, err
			}
			b = rest
			for i := 0; i < n; i++ {
				var k int
				var v []byte
				if k, b, err = u16(b); err != nil {
					return nil, err
				}
				if v, b, err = str16(b); err != nil {
					return nil, err
				}
				h.Ints = append(h.Ints, IntKV{Key: uint16(k), Value: v})
			}
		case InfoACLToken:
			var err error
			if h.Token, b, err = str16(b); err != nil {
				return nil, err
			}
		default:
			return nil, malformed("unknown info section %#02x", id)
		}
	}
	return frame[end:], nil
}

func u16(b []byte) (int, []byte, error) {
	if len(b) < 2 {
		return 0, nil, malformed("truncated header")
	}
	return int(binary.BigEndian.Uint16(b)), b[2:], nil
}

func str16(b []byte) ([]byte, []byte, error) {
	n, b, err := u16(b)
	if err != nil {
		return nil, nil, err
	}
	if n > len(b) {
		return nil, nil, malformed("string of %d bytes in %d header bytes", n, len(b))
	}
	return b[:n:n], b[n:], nil
}

// ErrHeaderTooLarge is returned by AppendHeader for a header the format
// cannot carry: more than 65535 entries in a section, a key or value over
// 65535 bytes, more than 255 transforms, or over 262140 header bytes.
var ErrHeaderTooLarge = errors.New("ttheader: header too large for the format")

// AppendHeader appends h with a placeholder length word and returns the new
// buffer and the frame's start, to pass to FinishFrame once the payload is
// appended. On error buf is returned unchanged.
func AppendHeader(buf []byte, h *Header) ([]byte, int, error) {
	start := len(buf)
	if len(h.Transforms) > 0xff || len(h.Strings) > 0xffff || len(h.Ints) > 0xffff || len(h.Token) > 0xffff {
		return buf, start, ErrHeaderTooLarge
	}
	buf = binary.BigEndian.AppendUint32(buf, 0)
	buf = binary.BigEndian.AppendUint16(buf, Magic)
	buf = binary.BigEndian.AppendUint16(buf, h.Flags)
	buf = binary.BigEndian.AppendUint32(buf, h.SeqID)
	buf = binary.BigEndian.AppendUint16(buf, 0) // header size, patched below
	hstart := len(buf)
	buf = append(buf, h.Protocol, byte(len(h.Transforms)))
	buf = append(buf, h.Transforms...)
	if len(h.Strings) > 0 {
		buf = append(buf, InfoKeyValue)
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(h.Strings)))
		for _, kv := range h.Strings {
			if len(kv.Key) > 0xffff || len(kv.Value) > 0xffff {
				return buf[:start], start, fmt.Errorf("%w: string entry %.32q of %d+%d bytes", ErrHeaderTooLarge, kv.Key, len(kv.Key), len(kv.Value))
			}
			buf = appendStr16(buf, kv.Key)
			buf = appendStr16(buf, kv.Value)
		}
	}
	if len(h.Ints) > 0 {
		buf = append(buf, InfoIntKeyValue)
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(h.Ints)))
		for _, kv := range h.Ints {
			if len(kv.Value) > 0xffff {
				return buf[:start], start, fmt.Errorf("%w: int key %d value of %d bytes", ErrHeaderTooLarge, kv.Key, len(kv.Value))
			}
			buf = binary.BigEndian.AppendUint16(buf, kv.Key)
			buf = appendStr16(buf, kv.Value)
		}
	}
	if h.Token != nil {
		buf = append(buf, InfoACLToken)
		buf = appendStr16(buf, h.Token)
	}
	for (len(buf)-hstart)%4 != 0 {
		buf = append(buf, 0)
	}
	words := (len(buf) - hstart) / 4
	if words > 0xffff {
		return buf[:start], start, fmt.Errorf("%w: %d header bytes", ErrHeaderTooLarge, len(buf)-hstart)
	}
	binary.BigEndian.PutUint16(buf[hstart-2:], uint16(words))
	return buf, start, nil
}

// appendStr16 appends a u16 length and s; callers check len(s) <= 0xffff.
func appendStr16(buf, s []byte) []byte {
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(s)))
	return append(buf, s...)
}

// FinishFrame writes the length word of the frame that starts at start and
// checks it against max (0: no limit).
func FinishFrame(buf []byte, start, max int) ([]byte, error) {
	size := len(buf) - start
	if max > 0 && size > max {
		return buf[:start], fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, max)
	}
	binary.BigEndian.PutUint32(buf[start:], uint32(size-4))
	return buf, nil
}

// Payload is a decoded KitexProtobuf payload header and its body.
type Payload struct {
	Type   MsgType
	Method []byte
	SeqID  uint32
	Body   []byte
}

// DecodePayload parses a KitexProtobuf payload. Method and Body point into b.
func DecodePayload(b []byte) (Payload, error) {
	var p Payload
	if len(b) < 16 {
		return p, malformed("payload of %d bytes, need at least 16", len(b))
	}
	if n := uint64(binary.BigEndian.Uint32(b)); n != uint64(len(b)-4) {
		return p, malformed("payload length word says %d, %d bytes follow", n, len(b)-4)
	}
	v := binary.BigEndian.Uint32(b[4:])
	if v>>16 != PayloadMagic {
		return p, malformed("payload magic %#04x, want %#04x", v>>16, PayloadMagic)
	}
	if t := v & 0xffff; t < uint32(Call) || t > uint32(Oneway) {
		return p, malformed("message type %d", t)
	}
	p.Type = MsgType(v & 0xffff)
	nl64 := uint64(binary.BigEndian.Uint32(b[8:]))
	if nl64 > uint64(len(b)-16) {
		return p, malformed("method name of %d bytes in %d-byte payload", nl64, len(b))
	}
	nl := int(nl64)
	p.Method = b[12 : 12+nl : 12+nl]
	p.SeqID = binary.BigEndian.Uint32(b[12+nl:])
	p.Body = b[16+nl:]
	return p, nil
}

// AppendPayloadHeader appends the payload header with a placeholder length
// and returns the buffer and the payload's start for FinishPayload.
func AppendPayloadHeader(buf []byte, t MsgType, method string, seq uint32) ([]byte, int) {
	start := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, 0)
	buf = binary.BigEndian.AppendUint32(buf, PayloadMagic<<16|uint32(t))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(method)))
	buf = append(buf, method...)
	buf = binary.BigEndian.AppendUint32(buf, seq)
	return buf, start
}

// FinishPayload writes the length word of the payload that starts at start.
func FinishPayload(buf []byte, start int) {
	binary.BigEndian.PutUint32(buf[start:], uint32(len(buf)-start-4))
}

// More string keys: the attempt number of a retried call, and Kitex's
// "connection ready to reset" hint a draining server puts on its replies.
// KeyCaller names the calling service on gRPC and Connect, where no
// FromService slot exists; the native protocol uses KeyFromService.
const (
	KeyAttempt   = "sluice-attempt"
	KeyConnReset = "crrst"
	KeyCaller    = "sluice-caller"
)

// Kitex business-status keys: a Kitex server reports a business error as
// a reply with an empty body and these keys set.
const (
	KeyBizStatus  = "biz-status"
	KeyBizMessage = "biz-message"
	KeyBizExtra   = "biz-extra"
)
