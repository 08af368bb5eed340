// Package fault holds the sentinel errors the domain packages (store,
// access, auth) share (and the hosted services' failures). A package wraps one with %w and a "pkg: op" prefix;
// callers test with errors.Is, and the HTTP layer translates each to its
// problem+json answer in one place (server/problem.go). This package holds
// only these sentinels: no behaviour, no other errors.
package fault

import "errors"

var (
	// ErrNotFound marks an object that does not exist, or that the caller
	// may not see (both answer 404 alike, so a 404 never tells which).
	ErrNotFound = errors.New("not found")

	// ErrForbidden marks an action on an object the caller can see but may
	// not perform (403).
	ErrForbidden = errors.New("forbidden")

	// ErrConflict marks a write that clashes with the current state, such as
	// a taken email or an existing link (409).
	ErrConflict = errors.New("conflict")

	// ErrInvalid marks input that fails validation; nothing was changed
	// (400).
	ErrInvalid = errors.New("invalid")

	// ErrUnauthenticated marks missing or wrong credentials, or a token that
	// is not valid (401).
	ErrUnauthenticated = errors.New("unauthenticated")

	// ErrEmbeddingModel marks a failure of the embedding model the node
	// calls (502); its answer, which may hold keys or internal hosts,
	// reaches the logs only.
	ErrEmbeddingModel = errors.New("the embedding model failed")

	// ErrLanguageModel marks a failure of the language model that writes
	// answers (502), logged like ErrEmbeddingModel.
	ErrLanguageModel = errors.New("the language model failed")
)
