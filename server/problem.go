package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/auth"
	"github.com/sostenuto/sostenuto/server/fault"
	"github.com/sostenuto/sostenuto/server/search"
	"github.com/sostenuto/sostenuto/server/store"
)

// Problem is an RFC 9457 problem document; every error this API answers is
// one, with a stable snake_case Code clients can switch on.
type Problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail"`
	Code   string       `json:"code"`
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError names one invalid input field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error makes a *Problem usable as an error returned by handlers' helpers.
func (p *Problem) Error() string { return p.Code + ": " + p.Detail }

// Stable problem codes.
const (
	CodeInvalidInput     = "invalid_input"
	CodeUnauthenticated  = "unauthenticated"
	CodeEmailUnconfirmed = "email_unconfirmed"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "conflict"
	CodePayloadTooLarge  = "payload_too_large"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeRateLimited      = "rate_limited"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
)

// problemTypeBase prefixes the type URI of every problem; the URIs name the
// code and are documented in docs/API.md.
const problemTypeBase = "https://sostenuto.dev/problems/"

// NewProblem builds a problem for status and code with a human detail.
func NewProblem(status int, code, detail string) *Problem {
	return &Problem{
		Type:   problemTypeBase + strings.ReplaceAll(code, "_", "-"),
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Code:   code,
	}
}

// Invalid is a 400 invalid_input problem listing the offending fields.
func Invalid(detail string, errs ...FieldError) *Problem {
	p := NewProblem(http.StatusBadRequest, CodeInvalidInput, detail)
	p.Errors = errs
	return p
}

// WriteProblem writes p as application/problem+json.
func WriteProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p) //nolint:errcheck // the client went away; nothing to do
}

// upstreamError is a failure of a hosted service the node calls (the
// embedding model, the language model). Its user sees a sentence naming
// the service; the service's answer, whose body may hold keys, prompts or
// internal hosts, reaches the logs only.
type upstreamError struct {
	service string // "the embedding model", "the language model"
	err     error
}

func (e *upstreamError) Error() string { return e.service + ": " + e.err.Error() }

func (e *upstreamError) Unwrap() error { return e.err }

// upstreamOf names the hosted service whose failure err is; nil when it
// is none's.
func upstreamOf(err error) *upstreamError {
	var up *upstreamError
	switch {
	case errors.As(err, &up):
		return up
	case errors.Is(err, fault.ErrEmbeddingModel):
		return &upstreamError{service: "the embedding model", err: err}
	case errors.Is(err, fault.ErrLanguageModel):
		return &upstreamError{service: "the language model", err: err}
	}
	return nil
}

// upstreamProblem logs a hosted service's failure with the request id and
// answers 502 with a sentence that names the service, never its answer.
func (s *Server) upstreamProblem(r *http.Request, up *upstreamError) *Problem {
	id := RequestID(r.Context())
	s.logger.WarnContext(r.Context(), "upstream service failed", "component", "http", "request_id", id,
		"service", up.service, "error", up.err)
	return NewProblem(http.StatusBadGateway, CodeUnavailable,
		fmt.Sprintf("%s failed to answer; retry shortly, or quote request id %s when reporting it", up.service, id))
}

// WriteError translates err into its problem and writes it. Errors that are
// not problems are logged once, here, and answered as an opaque 500 so no
// internals leak; so are a hosted service's failures, answered 502.
func (s *Server) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	if up := upstreamOf(err); up != nil {
		WriteProblem(w, r, s.upstreamProblem(r, up))
		return
	}
	if p := problemOf(err); p != nil {
		if p.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sostenuto"`)
		}
		var th *auth.ThrottledError
		if errors.As(err, &th) {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(time.Until(th.RetryAt).Seconds())))))
		}
		if p.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "2")
			s.logger.WarnContext(r.Context(), "dependency unavailable", "component", "http",
				"request_id", RequestID(r.Context()), "error", err)
		}
		WriteProblem(w, r, p)
		return
	}
	s.logger.ErrorContext(r.Context(), "request failed", "component", "http",
		"request_id", RequestID(r.Context()), "error", err)
	WriteProblem(w, r, NewProblem(http.StatusInternalServerError, CodeInternal,
		fmt.Sprintf("internal error; quote request id %s when reporting it", RequestID(r.Context()))))
}

// problemOf maps the shared sentinels (package fault) and the domain
// packages' own errors to problems; nil for errors that are not the
// client's doing. The 404 body never depends on why: an object the caller
// may not see answers exactly like a missing one.
func problemOf(err error) *Problem {
	var (
		p     *Problem
		valid *auth.ValidationError
		th    *auth.ThrottledError
		ahead *search.AheadError
	)
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &valid):
		fields := make([]FieldError, len(valid.Fields))
		for i, f := range valid.Fields {
			fields[i] = FieldError{Field: f.Field, Message: f.Message}
		}
		return Invalid("the request has invalid fields", fields...)
	case errors.As(err, &th):
		return NewProblem(http.StatusTooManyRequests, CodeRateLimited, "too many failed sign-ins; retry later")
	case errors.Is(err, auth.ErrEmailUnconfirmed):
		return NewProblem(http.StatusUnauthorized, CodeEmailUnconfirmed, "the token's email is not confirmed; confirm it with Supabase Auth, then sign in again")
	case errors.Is(err, fault.ErrUnauthenticated):
		return NewProblem(http.StatusUnauthorized, CodeUnauthenticated, "missing, invalid or expired credentials")
	case errors.Is(err, fault.ErrNotFound):
		return NewProblem(http.StatusNotFound, CodeNotFound, "no such resource")
	case errors.Is(err, fault.ErrForbidden):
		return NewProblem(http.StatusForbidden, CodeForbidden, lastPart(err))
	case errors.As(err, &ahead):
		return NewProblem(http.StatusServiceUnavailable, CodeUnavailable, ahead.Error())
	case errors.Is(err, search.ErrTooManyWaiting):
		return NewProblem(http.StatusServiceUnavailable, CodeUnavailable,
			"too many searches are waiting for this node's index to catch up; retry in a second")
	case errors.Is(err, search.ErrUnavailable):
		return NewProblem(http.StatusServiceUnavailable, CodeUnavailable,
			"the search index is catching up and the database is busy with other searches; retry in a second")
	case errors.Is(err, index.ErrBadQuery):
		return Invalid(lastPart(err))
	case errors.Is(err, store.ErrBadCursor):
		return Invalid("the cursor is not one this API made", FieldError{Field: "cursor", Message: "malformed"})
	case errors.Is(err, store.ErrStale):
		return NewProblem(http.StatusPreconditionFailed, "precondition_failed", "the annotation changed since that version; fetch it and retry")
	case errors.Is(err, fault.ErrConflict):
		return NewProblem(http.StatusConflict, CodeConflict, lastPart(err))
	case errors.Is(err, fault.ErrInvalid):
		return Invalid(lastPart(err))
	case store.Unavailable(err):
		return NewProblem(http.StatusServiceUnavailable, CodeUnavailable, "the database is unavailable or too slow right now; retry shortly")
	}
	return nil
}

// lastPart keeps the reason the domain gave: it strips "pkg: op: " prefixes and the trailing sentinel from a
// wrapped error's message.
func lastPart(err error) string {
	msg := err.Error()
	parts := strings.Split(msg, ": ")
	if len(parts) >= 2 {
		parts = parts[:len(parts)-1] // the sentinel
	}
	return parts[len(parts)-1]
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // URLs keep their &; nobody renders this as HTML
	enc.Encode(v)            //nolint:errcheck // the client went away; nothing to do
}
