package connect

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// wireError is the JSON body of a unary error reply:
//
//	{"code": "not_found", "message": "...", "details": [...]}
//
// Sluice statuses carry no details, so it sends none; details a peer sends
// are read and dropped.
type wireError struct {
	Code    string       `json:"code"`
	Message string       `json:"message,omitempty"`
	Details []wireDetail `json:"details,omitempty"`
}

type wireDetail struct {
	Type  string          `json:"type"`
	Value string          `json:"value"` // unpadded base64 of the protobuf bytes
	Debug json.RawMessage `json:"debug,omitempty"`
}

// AppendError appends the JSON error body for err (its status code by its
// Connect name, and its message) to buf.
func AppendError(buf []byte, err error) []byte {
	st := status.Convert(err)
	code := st.Code()
	if code == codes.OK { // not an error: say so rather than send "ok"
		code = codes.Unknown
	}
	b, merr := json.Marshal(wireError{Code: status.ConnectName(code), Message: st.Message()})
	if merr != nil { // cannot happen: two strings
		return append(buf, `{"code":"internal"}`...)
	}
	return append(buf, b...)
}

// WriteError writes err as a unary error reply with the given HTTP status
// (status.HTTPStatus of the code for anything but protocol-level refusals
// such as 405 and 415). Headers already set on w are kept.
func WriteError(w http.ResponseWriter, httpStatus int, err error) {
	body := AppendError(make([]byte, 0, 128), err)
	h := w.Header()
	h["Content-Type"] = []string{ContentTypeJSON}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	delete(h, "Content-Encoding")
	w.WriteHeader(httpStatus)
	w.Write(body)
}

// DecodeError turns a non-200 unary reply into a status error. body is the
// (decompressed) content when the reply's Content-Type is application/json,
// nil otherwise. A body without a code Sluice knows, or that is not a
// Connect error at all (a proxy's HTML page, say), gets its code from the
// HTTP status, as the protocol says. The result is never nil and its code
// never OK.
func DecodeError(httpStatus int, body []byte) error {
	// Field by field, so a malformed "details" (or any other field) does
	// not cost the code and message.
	var fields map[string]json.RawMessage
	var name, msg string
	if json.Unmarshal(body, &fields) == nil {
		json.Unmarshal(fields["code"], &name)
		json.Unmarshal(fields["message"], &msg)
	}
	code, known := status.CodeFromConnectName(name)
	if !known || code == codes.OK {
		code = status.CodeFromHTTPStatus(httpStatus)
		if code == codes.OK {
			code = codes.Unknown
		}
	}
	if msg == "" {
		msg = fmt.Sprintf("connect: HTTP %d %s", httpStatus, http.StatusText(httpStatus))
	}
	return status.Err(code, msg)
}
