// Package rules is the one statement of the edge's decisions, shared by
// both edges: sostenuto-edge (Go, package edge) imports it, and the
// Cloudflare Worker (edge/worker) runs it compiled to WebAssembly behind a
// thin JavaScript shell. It decides, and does no I/O: which bearer tokens
// are accepted and whose they are, which key set a token needs, the cache
// keys of decisions and kept answers, which requests are idempotent and
// when a failed attempt is sent to another node, which answers are kept,
// and how a Range header reads. The vectors in edge/conformance pin each
// rule; both edges pass them.
//
// It imports nothing of ours and no net/http (it must stay small in Wasm).
package rules

import "github.com/google/uuid"

// PublicPath reports whether path needs no token: a bad token on such a
// route is dropped rather than refused, so a client refreshing with its
// expired access token still attached is not refused.
func PublicPath(path string) bool {
	switch path {
	case "/api/auth/register", "/api/auth/login", "/api/auth/refresh", "/api/auth/logout",
		"/api/auth/jwks.json", "/api/health", "/api/ready", "/api/openapi.json":
		return true
	}
	return false
}

// ValidProjectID reports whether a stream or page-image request names a
// project id the edge passes on (uuid.Parse's forms); any other answers
// 404 at the edge.
func ValidProjectID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil
}
