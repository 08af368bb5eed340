package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// CachedRoutes are the POST routes whose JSON answers an edge keeps.
var CachedRoutes = []string{"/api/embeddings/generate", "/api/search", "/api/chat/query"}

// AnswerKey is the key of a kept answer: the verified user (issuer|subject),
// the route and the exact request body. A kept answer is never found
// under another user's key.
func AnswerKey(sub, route string, body []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", sub, route)
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// DecisionKey is the key of a node's kept "may view" for the verified user
// and the node's decision route (with its query).
func DecisionKey(sub, path string) string { return sub + "|" + path }

// Request is what the edge's rules need to know of a request.
type Request struct {
	Method string
	Path   string
	// Subject is the verified token's issuer|subject ("" without one).
	Subject string
	// Accept and IfNoneMatch are the request's headers.
	Accept, IfNoneMatch string
	// Body is the request body when the edge kept it (at most the replay
	// bound); Kept says it did (false: too large, streamed).
	Body []byte
	Kept bool
}

// ChatInSession reports whether a chat body names a session: the exchange
// is stored, so the request is neither kept nor sent twice.
func ChatInSession(body []byte) bool {
	var in struct {
		SessionID *string `json:"session_id"`
	}
	return json.Unmarshal(body, &in) == nil && in.SessionID != nil && *in.SessionID != ""
}

// Plan is the edge's plan for a request: whether a failed attempt may be
// sent again, and whether the answer cache takes part (and under which
// key).
type Plan struct {
	Idempotent bool   `json:"idempotent"`
	Cache      bool   `json:"cache"`
	Key        string `json:"key,omitempty"`
}

// PlanFor plans r: GET, HEAD, OPTIONS, PUT and DELETE are idempotent, and
// so are the answer routes (search, embeddings, chat without a session).
// Those answers are kept when the request carries a verified token, asks
// for JSON (not an event stream), sets no condition of its own and its body
// was kept.
func PlanFor(r Request) Plan {
	if r.Method != "POST" || !slices.Contains(CachedRoutes, r.Path) {
		return Plan{Idempotent: IdempotentMethod(r.Method)}
	}
	if r.Path == "/api/chat/query" && ChatInSession(r.Body) {
		return Plan{} // stored in the session: never twice
	}
	p := Plan{Idempotent: true}
	if r.Subject == "" || strings.Contains(r.Accept, "text/event-stream") || r.IfNoneMatch != "" || !r.Kept {
		return p
	}
	p.Cache, p.Key = true, AnswerKey(r.Subject, r.Path, r.Body)
	return p
}

// IdempotentMethod: GET, HEAD, OPTIONS, PUT and DELETE.
func IdempotentMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE":
		return true
	}
	return false
}

// Keepable reports whether a node's answer may be kept: 200, with an
// ETag, JSON, and at most maxBytes long (length -1: unknown, checked as
// it is read).
func Keepable(status int, etag, mediaType string, length, maxBytes int64) bool {
	return status == 200 && etag != "" && mediaType == "application/json" && length <= maxBytes
}
