package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Problem is an RFC 9457 problem document; every error this API answers is
// one, with a stable snake_case Code clients can switch on.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail"`
	Code     string       `json:"code"`
	Errors   []FieldError `json:"errors,omitempty"`
	Instance string       `json:"instance,omitempty"`
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
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p) //nolint:errcheck // the client went away; nothing to do
}

// WriteError translates err into its problem and writes it. Errors that are
// not problems are logged once, here, and answered as an opaque 500 so no
// internals leak.
func (s *Server) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var p *Problem
	if errors.As(err, &p) {
		WriteProblem(w, r, p)
		return
	}
	s.logger.ErrorContext(r.Context(), "request failed", "component", "http",
		"request_id", RequestID(r.Context()), "error", err)
	WriteProblem(w, r, NewProblem(http.StatusInternalServerError, CodeInternal,
		fmt.Sprintf("internal error; quote request id %s when reporting it", RequestID(r.Context()))))
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client went away; nothing to do
}
