package status

import (
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
)

// The one code table every protocol uses. gRPC carries codes as numbers
// (grpc-status), the native protocol as numbers (sluice-code), Connect as
// snake_case names with an HTTP status. docs/PROTOCOL.md prints it.
var table = [...]struct {
	name string // Connect's name
	http int    // HTTP status of a Connect unary error
}{
	codes.OK:                 {"ok", http.StatusOK},
	codes.Canceled:           {"canceled", 499},
	codes.Unknown:            {"unknown", http.StatusInternalServerError},
	codes.InvalidArgument:    {"invalid_argument", http.StatusBadRequest},
	codes.DeadlineExceeded:   {"deadline_exceeded", http.StatusGatewayTimeout},
	codes.NotFound:           {"not_found", http.StatusNotFound},
	codes.AlreadyExists:      {"already_exists", http.StatusConflict},
	codes.PermissionDenied:   {"permission_denied", http.StatusForbidden},
	codes.ResourceExhausted:  {"resource_exhausted", http.StatusTooManyRequests},
	codes.FailedPrecondition: {"failed_precondition", http.StatusBadRequest},
	codes.Aborted:            {"aborted", http.StatusConflict},
	codes.OutOfRange:         {"out_of_range", http.StatusBadRequest},
	codes.Unimplemented:      {"unimplemented", http.StatusNotFound},
	codes.Internal:           {"internal", http.StatusInternalServerError},
	codes.Unavailable:        {"unavailable", http.StatusServiceUnavailable},
	codes.DataLoss:           {"data_loss", http.StatusInternalServerError},
	codes.Unauthenticated:    {"unauthenticated", http.StatusUnauthorized},
}

// ConnectName returns the Connect protocol's name for c ("not_found"); a
// code outside the canonical range is "unknown".
func ConnectName(c codes.Code) string {
	if int(c) < len(table) {
		return table[c].name
	}
	return "unknown"
}

// CodeFromConnectName parses a Connect code name; false for an unknown name.
func CodeFromConnectName(name string) (codes.Code, bool) {
	for c, e := range table {
		if e.name == name {
			return codes.Code(c), true
		}
	}
	return codes.Unknown, false
}

// HTTPStatus returns the HTTP status a Connect unary error with code c
// carries (unimplemented is 404, as the Connect protocol says).
func HTTPStatus(c codes.Code) int {
	if int(c) < len(table) {
		return table[c].http
	}
	return http.StatusInternalServerError
}

// CodeFromHTTPStatus maps the HTTP status of a response that carries no
// Connect or gRPC error body (a proxy's, say) to a code, as the Connect and
// gRPC specifications both do.
func CodeFromHTTPStatus(status int) codes.Code {
	switch status {
	case http.StatusOK:
		return codes.OK
	case http.StatusBadRequest:
		return codes.Internal
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.Unimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return codes.Unavailable
	}
	return codes.Unknown
}

// ParseCode parses a decimal code as sent in grpc-status or sluice-code;
// false when it is not a canonical code.
func ParseCode(s string) (codes.Code, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n >= len(table) {
		return codes.Unknown, false
	}
	return codes.Code(n), true
}

// Name returns the gRPC specification's name of c ("UNAVAILABLE",
// "CANCELLED"), as metrics and traces label codes; a code outside the
// canonical range is "UNKNOWN".
// It does not allocate.
func Name(c codes.Code) string {
	if int(c) >= len(grpcNames) {
		return "UNKNOWN"
	}
	return grpcNames[c]
}

// grpcNames are the table's names as gRPC spells them.
var grpcNames = func() (n [len(table)]string) {
	for c := range table {
		n[c] = strings.ToUpper(table[c].name)
	}
	n[codes.Canceled] = "CANCELLED" // gRPC's spelling; Connect's is "canceled"
	return n
}()

// ParseName parses a code by name, as rule documents write it: the gRPC
// name ("UNAVAILABLE", "DEADLINE_EXCEEDED"), Go's ("Unavailable",
// "DeadlineExceeded") or Connect's ("deadline_exceeded"), in any case.
// "CANCELLED", gRPC's spelling, is accepted too.
func ParseName(s string) (codes.Code, bool) {
	want := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), "_", ""))
	if want == "cancelled" {
		return codes.Canceled, true
	}
	for c := range table {
		if strings.ReplaceAll(table[c].name, "_", "") == want {
			return codes.Code(c), true
		}
	}
	return codes.Unknown, false
}
