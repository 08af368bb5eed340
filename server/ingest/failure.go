package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/sostenuto/sostenuto/server/jobs"
)

// Error codes: why a document failed (Document.error_code). Stable
// snake_case; docs/INGESTION.md says what each means.
const (
	CodeBlockedAddress   = "blocked_address"     // the SSRF guard refused the source's address
	CodeFetchFailed      = "fetch_failed"        // the source could not be reached or refused the request
	CodeNotFoundAtSource = "not_found_at_source" // the source says it is not there (404, 410; a missing upload)
	CodeTooLarge         = "too_large"           // over a size limit
	CodeNoText           = "no_text"             // nothing to index (no readable text, no captions)
	CodeTimeout          = "timeout"             // the source did not answer in time
	CodeUnsupported      = "unsupported"         // a kind of content that is not read (not HTML, not a caption file, an unreadable PDF)
	CodeFailed           = "failed"              // anything else: a fault on our side, or recorded before codes existed
)

// FetchError is why a document's source could not be fetched or read,
// classified once, where the failure happened. Its Message is what every
// viewer of the document reads, so it never carries an internal address,
// resolver or library text; Err keeps that detail for the operators' logs.
// Permanent failures are not retried; classification is by errors.As on
// this type, never by message text.
type FetchError struct {
	Code      string // one of the Code constants
	Message   string // a sentence for a person
	Permanent bool   // retrying cannot help
	Status    int    // the source's HTTP status, 0 when there was none
	Err       error  // the detail, for logs
}

// Error is the detail, for logs.
func (e *FetchError) Error() string {
	if e.Err == nil {
		return "ingest: " + e.Code + ": " + e.Message
	}
	return e.Err.Error()
}

// Unwrap exposes the detail (ErrBlocked, ErrNoCaptions, …).
func (e *FetchError) Unwrap() error { return e.Err }

func permanentFailure(code, message string, err error) *FetchError {
	return &FetchError{Code: code, Message: message, Permanent: true, Err: err}
}

func transientFailure(code, message string, err error) *FetchError {
	return &FetchError{Code: code, Message: message, Err: err}
}

// statusFailure classifies a source's answer other than 200: 404 and 410
// say the source is not there; 408, 429 and 5xx may pass; other 4xx will
// not.
func statusFailure(status int, detail error) *FetchError {
	fe := &FetchError{Code: CodeFetchFailed, Status: status, Permanent: true, Err: detail,
		Message: fmt.Sprintf("The source refused the request (HTTP %d).", status)}
	switch {
	case status == http.StatusNotFound || status == http.StatusGone:
		fe.Code, fe.Message = CodeNotFoundAtSource, fmt.Sprintf("The source says the page does not exist (HTTP %d).", status)
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		fe.Permanent, fe.Message = false, fmt.Sprintf("The source answered with a temporary error (HTTP %d).", status)
	}
	return fe
}

// transportFailure classifies a failed request: the guard's refusals (at
// dial time, or of a redirect) as they are; timeouts; names that do not
// resolve; anything else as an unreachable source. Only the last three are
// worth a retry.
func transportFailure(err error) *FetchError {
	var (
		fe  *FetchError
		dns *net.DNSError
		ne  net.Error
	)
	switch {
	case errors.As(err, &fe):
		return &FetchError{Code: fe.Code, Message: fe.Message, Permanent: fe.Permanent, Status: fe.Status, Err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return transientFailure(CodeTimeout, "The source did not answer in time.", err)
	case errors.As(err, &dns) && dns.IsNotFound:
		return transientFailure(CodeFetchFailed, "The source's host name could not be found.", err)
	}
	return transientFailure(CodeFetchFailed, "The source could not be reached.", err)
}

// markPermanent wraps a permanent FetchError in jobs.ErrPermanent, so the
// job runner fails the job at once instead of retrying it.
func markPermanent(err error) error {
	var fe *FetchError
	if errors.As(err, &fe) && fe.Permanent && !errors.Is(err, jobs.ErrPermanent) {
		return fmt.Errorf("%w: %w", jobs.ErrPermanent, err)
	}
	return err
}

// Describe is what a failed document tells its viewers: an error code and
// a sentence. A failure no FetchError classified (the embedder, the
// database, a lost worker) names no part of the system: CodeFailed.
func Describe(err error) (code, message string) {
	var fe *FetchError
	if errors.As(err, &fe) {
		return fe.Code, fe.Message
	}
	return CodeFailed, "Processing failed because of a problem on our side."
}
