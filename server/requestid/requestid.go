// Package requestid carries the X-Request-ID of a request through the
// node and the edge alike: a well-formed id from the client (or the edge in
// front) is kept, anything else is replaced by a fresh UUID, and the id is
// answered back.
package requestid

import (
	"context"
	"net/http"

	"github.com/google/uuid"
)

// Header carries the request id in both directions.
const Header = "X-Request-ID"

type ctxKey struct{}

// FromContext returns the id of the request ctx belongs to.
func FromContext(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// Middleware keeps a valid incoming id or makes one, sets it on the
// request (for proxies passing it on) and the response, and puts it in the
// request's context.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(Header)
		if !Valid(id) {
			id = uuid.NewString()
		}
		r.Header.Set(Header, id)
		w.Header().Set(Header, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

// Valid reports whether id may be kept: 1 to 128 characters of
// A-Z a-z 0-9 - _ . :
func Valid(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':'
		if !ok {
			return false
		}
	}
	return true
}
