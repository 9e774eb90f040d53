package ttheader

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// Seeds shared by the fuzz targets besides the corpus in testdata/fuzz.
func fuzzFrames(f *testing.F) [][]byte {
	var out [][]byte
	for _, s := range []string{kitexRequestPlain, kitexRequestMeta, kitexReply} {
		b, err := hex.DecodeString(s)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzDecodeHeader: DecodeHeader never panics, fails only with ErrMalformed,
// and what it decodes survives re-encoding.
func FuzzDecodeHeader(f *testing.F) {
	for _, b := range fuzzFrames(f) {
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	var h Header
	h.Protocol, h.Flags, h.SeqID = 2, 0xffff, 0xffffffff
	h.Transforms = []byte{1, 2, 3}
	h.AddString("k", "v")
	h.AddInt(KeyRPCTimeout, []byte("1000"))
	h.Token = []byte("token")
	f.Add(encodeFrame(f, &h, []byte("payload")))
	f.Add(rawFrame([]byte{0, 0, InfoKeyValue, 0, 1, 0, 9, 'k'}, nil))
	f.Add(rawFrame([]byte{0, 0, InfoPadding, 1}, nil))

	f.Fuzz(func(t *testing.T, frame []byte) {
		var h Header
		pl, err := DecodeHeader(frame, &h)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		buf, fs, err := AppendHeader(nil, &h)
		if err != nil {
			t.Fatalf("decoded header does not re-encode: %v", err)
		}
		buf = append(buf, pl...)
		buf, err = FinishFrame(buf, fs, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(buf) > len(frame) {
			t.Fatalf("re-encoded frame of %d bytes is longer than the %d-byte original", len(buf), len(frame))
		}
		var h2 Header
		pl2, err := DecodeHeader(buf, &h2)
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v\noriginal %x\nre-encoded %x", err, frame, buf)
		}
		if d := headerDiff(&h2, &h); d != "" {
			t.Fatalf("%s after re-encoding\noriginal %x\nre-encoded %x", d, frame, buf)
		}
		if !bytes.Equal(pl, pl2) {
			t.Fatalf("payload differs after re-encoding")
		}
	})
}

// FuzzDecodePayload: DecodePayload never panics, fails only with
// ErrMalformed, and what it decodes survives re-encoding.
func FuzzDecodePayload(f *testing.F) {
	for _, b := range fuzzFrames(f) {
		var h Header
		pl, err := DecodeHeader(b, &h)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(pl)
	}
	for _, typ := range []MsgType{Call, Reply, Exception, Oneway} {
		buf, ps := AppendPayloadHeader(nil, typ, "Method", 9)
		buf = append(buf, 1, 2, 3)
		FinishPayload(buf, ps)
		f.Add(buf)
	}
	f.Add(rawPayload(PayloadMagic<<16|5, 0, []byte{0, 0, 0, 1}))
	f.Add(rawPayload(PayloadMagic<<16|1, 0x80000000, []byte{0, 0, 0, 1}))

	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePayload(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		buf, ps := AppendPayloadHeader(nil, p.Type, string(p.Method), p.SeqID)
		buf = append(buf, p.Body...)
		FinishPayload(buf, ps)
		if len(buf) != len(b) {
			t.Fatalf("re-encoded %d bytes, original %d", len(buf), len(b))
		}
		p2, err := DecodePayload(buf)
		if err != nil {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
		if p2.Type != p.Type || p2.SeqID != p.SeqID || !bytes.Equal(p2.Method, p.Method) || !bytes.Equal(p2.Body, p.Body) {
			t.Fatalf("got %v %q %d %x after re-encoding, want %v %q %d %x", p2.Type, p2.Method, p2.SeqID, p2.Body, p.Type, p.Method, p.SeqID, p.Body)
		}
	})
}

// FuzzDecodeException: DecodeException never panics, fails only with
// ErrMalformed, and what it decodes survives re-encoding.
func FuzzDecodeException(f *testing.F) {
	f.Add(AppendException(nil, ExcUnknownMethod, "unknown method"))
	f.Add(AppendException(nil, -1, ""))
	f.Add([]byte{0x1b, 0x08, 0x01, 0x1c, 0x12, 0x01, 'x'}) // group, then message
	f.Add([]byte{0x12, 0x05, 'a'})
	f.Add([]byte{0x00})

	f.Fuzz(func(t *testing.T, b []byte) {
		id, msg, err := DecodeException(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		id2, msg2, err := DecodeException(AppendException(nil, id, msg))
		if err != nil || id2 != id || msg2 != msg {
			t.Fatalf("re-encoded (%d, %q) decodes to (%d, %q, %v)", id, msg, id2, msg2, err)
		}
	})
}
