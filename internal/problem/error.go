// Package problem is smartgate's one error model: an Error carries a catalogue
// id, a public description and hint for the client, an HTTP status, and a
// private cause that is only ever logged. One writer per surface renders it:
// OAuth JSON (RFC 6749 §5.2), a FHIR OperationOutcome, or an HTML page.
//
// Every id lives in the catalogue (catalogue.go), which also generates the
// public error reference at /docs/errors and docs/errors.md.
package problem

import (
	"errors"
	"fmt"
	"net/http"
)

// ID names one entry of the error catalogue. IDs are stable: they appear in
// error_uri fragments and in operators' alerting rules.
type ID string

// Error is the single error type handlers return. Description and Hint are
// public; Cause is private and never leaves the server.
type Error struct {
	ID          ID
	Description string // what went wrong for this request: the parameter, the rule, the fix
	Hint        string // optional extra advice
	Status      int    // 0 means the catalogue's status
	Cause       error  // private: logged, never sent
	Header      http.Header
	// Issues, when set, are the OperationOutcome's issues (validation
	// problems, each with its FHIRPath location) after the main one.
	Issues []Issue
}

// Issue is one OperationOutcome issue beyond an error's main one.
type Issue struct {
	Severity    string // error, warning, information
	Code        string // FHIR R4 IssueType
	Expression  string // FHIRPath location, optional
	Diagnostics string
}

// New returns an error for catalogue entry id with a public description.
// The description should name the parameter, the rule and the fix.
func New(id ID, format string, args ...any) *Error {
	mustKnow(id)
	return &Error{ID: id, Description: fmt.Sprintf(format, args...)}
}

// Wrap is New with a private cause.
func Wrap(id ID, cause error, format string, args ...any) *Error {
	e := New(id, format, args...)
	e.Cause = cause
	return e
}

// Internal wraps an unexpected failure: the client learns only that the
// server failed (and the request id); the cause goes to the log.
func Internal(cause error) *Error {
	return &Error{ID: InternalError, Description: "The server could not complete the request. Quote the request id to the administrator.", Cause: cause}
}

// WithHint sets the hint and returns e.
func (e *Error) WithHint(format string, args ...any) *Error {
	e.Hint = fmt.Sprintf(format, args...)
	return e
}

// WithStatus overrides the catalogue's HTTP status and returns e.
func (e *Error) WithStatus(status int) *Error {
	e.Status = status
	return e
}

// WithHeader adds a response header and returns e.
func (e *Error) WithHeader(key, value string) *Error {
	if e.Header == nil {
		e.Header = http.Header{}
	}
	e.Header.Add(key, value)
	return e
}

// Error is for logs: it includes the private cause.
func (e *Error) Error() string {
	s := string(e.ID) + ": " + e.Description
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Cause }

// Is reports whether target is a *Error with the same ID, so callers can
// write errors.Is(err, problem.New(problem.NotFound, "")) or use IsID.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.ID == e.ID
}

// Entry returns the catalogue entry of e.
func (e *Error) Entry() Entry { return catalogue[e.ID] }

// HTTPStatus is the status the response carries.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	if s := catalogue[e.ID].Status; s != 0 {
		return s
	}
	return http.StatusInternalServerError
}

// From converts any error to *Error: a *Error anywhere in the chain is
// returned as is, anything else becomes an internal error whose text stays
// private.
func From(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return Internal(err)
}

// IsID reports whether err is (or wraps) a problem with the given id.
func IsID(err error, id ID) bool {
	var pe *Error
	return errors.As(err, &pe) && pe.ID == id
}

func mustKnow(id ID) {
	if _, ok := catalogue[id]; !ok {
		// A programming error caught by TestEveryUsedIDIsCatalogued; never
		// reachable in a build that passed the tests.
		panic("problem: id " + string(id) + " is not in the catalogue")
	}
}
