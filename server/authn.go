package server

import (
	"context"
	"net/http"
	"strings"

	"github.com/sostenuto/sostenuto/server/access"
	"github.com/sostenuto/sostenuto/server/auth"
	"github.com/sostenuto/sostenuto/server/fault"
)

type ctxKey int

const principalKey ctxKey = iota + 100

// maxBearerLen bounds the Authorization header we parse; real tokens are
// well under 2 KiB.
const maxBearerLen = 8 << 10

// requireAuth authenticates the bearer token and puts the caller, as stored
// now, into the request context. Without a valid token: 401.
func (s *Server) requireAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(h) > maxBearerLen {
			s.WriteError(w, r, fault.ErrUnauthenticated)
			return
		}
		p, err := s.auth.Authenticate(r.Context(), strings.TrimSpace(token))
		if err != nil {
			s.logger.DebugContext(r.Context(), "authentication failed", "component", "auth",
				"request_id", RequestID(r.Context()), "error", err)
			s.WriteError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey, p)))
	})
}

// principal returns the authenticated caller; only under requireAuth.
func principal(r *http.Request) auth.Principal {
	p, _ := r.Context().Value(principalKey).(auth.Principal)
	return p
}

// actor is the caller as the access service sees it.
func actor(r *http.Request) access.Actor {
	u := principal(r).User
	return access.Actor{ID: u.ID, Role: u.Role}
}
