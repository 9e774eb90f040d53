package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
)

// Sentinels for errors.Is. The errors that match them also carry a gRPC code
// (status.Code(err) reads it): InvalidArgument, Aborted and NotFound.
var (
	// ErrInvalid matches every *InvalidError: a document that was rejected.
	ErrInvalid = errors.New("config: invalid document")
	// ErrConflict matches every *ConflictError: the stored version was not
	// the expected one, so nothing was written.
	ErrConflict = errors.New("config: version conflict")
	// ErrNotFound matches every *NotFoundError.
	ErrNotFound = errors.New("config: document not found")
)

// FieldError says what is wrong with one field of a document.
type FieldError struct {
	// Path names the field from the document root: "apiVersion",
	// "metadata.name", "spec.retries.maxAttempts", "spec.routes[2].weight".
	// Map keys that are not plain words are quoted: spec.headers["x.y"].
	// Empty for a document as a whole.
	Path string
	// Reason says why, for a person: "must be at least 1".
	Reason string
	// Line is where the field is in the source text; 0 when unknown.
	// Validators leave it 0; Decode fills it in for parsed documents.
	Line int
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		if e.Line > 0 {
			b.WriteString(" (line ")
			b.WriteString(strconv.Itoa(e.Line))
			b.WriteString(")")
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// FieldErrors is every field error of one document. A Kind's Validate may
// return it to report several fields at once.
type FieldErrors []*FieldError

func (es FieldErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// InvalidError is a rejected document: where it was and every field that is
// wrong. errors.Is(err, ErrInvalid) holds for it; its gRPC code is
// InvalidArgument.
type InvalidError struct {
	// Source is where the document came from: a file name, an etcd key;
	// empty when unknown.
	Source string
	// Index is the document's position in its source or batch, counting
	// from 1; 0 when unknown.
	Index int
	// Line is the line of the source where the document starts; 0 when unknown.
	Line int
	// Kind and Name are the document's, as far as they could be read.
	Kind, Name string
	// Fields lists what is wrong; never empty.
	Fields FieldErrors
}

func (e *InvalidError) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	b.WriteString("document")
	if e.Index > 0 {
		b.WriteString(" ")
		b.WriteString(strconv.Itoa(e.Index))
	}
	if e.Kind != "" || e.Name != "" {
		b.WriteString(" ")
		b.WriteString(Key{e.Kind, e.Name}.String())
	}
	if e.Line > 0 {
		b.WriteString(" (line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(e.Fields.Error())
	return b.String()
}

// Unwrap returns ErrInvalid.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

// GRPCStatus gives the error the InvalidArgument code.
func (e *InvalidError) GRPCStatus() *grpcstatus.Status {
	return grpcstatus.New(codes.InvalidArgument, e.Error())
}

// ConflictError is an Apply or Delete refused because the stored version of
// a document was not the expected one. errors.Is(err, ErrConflict) holds for
// it; its gRPC code is Aborted: read again, then retry.
type ConflictError struct {
	Key Key
	// Expected is the version the caller named: Absent, or a version > 0.
	Expected int64
	// Actual is the stored version; 0 when there is no such document.
	Actual int64
}

func (e *ConflictError) Error() string {
	exp, act := "absent", "absent"
	if e.Expected != Absent {
		exp = "version " + strconv.FormatInt(e.Expected, 10)
	}
	if e.Actual != 0 {
		act = "version " + strconv.FormatInt(e.Actual, 10)
	}
	return fmt.Sprintf("config: %s: version conflict: expected %s, found %s", e.Key, exp, act)
}

// Unwrap returns ErrConflict.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// GRPCStatus gives the error the Aborted code.
func (e *ConflictError) GRPCStatus() *grpcstatus.Status {
	return grpcstatus.New(codes.Aborted, e.Error())
}

// NotFoundError is a Delete of a document that does not exist.
// errors.Is(err, ErrNotFound) holds for it; its gRPC code is NotFound.
type NotFoundError struct {
	Key Key
}

func (e *NotFoundError) Error() string { return "config: " + e.Key.String() + ": not found" }

// Unwrap returns ErrNotFound.
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// GRPCStatus gives the error the NotFound code.
func (e *NotFoundError) GRPCStatus() *grpcstatus.Status {
	return grpcstatus.New(codes.NotFound, e.Error())
}

// fieldErrors turns what a validator returned into field errors: a
// *FieldError, FieldErrors, or a tree of them joined with errors.Join. Any
// other error is reported against "spec".
func fieldErrors(err error) FieldErrors {
	var out FieldErrors
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *FieldError:
			if e != nil {
				out = append(out, e)
			}
		case FieldErrors:
			for _, fe := range e {
				walk(fe)
			}
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		default:
			out = append(out, &FieldError{Path: "spec", Reason: err.Error()})
		}
	}
	walk(err)
	return out
}
