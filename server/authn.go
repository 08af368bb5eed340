package server

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/sostenuto/sostenuto/server/access"
	"github.com/sostenuto/sostenuto/server/auth"
	"github.com/sostenuto/sostenuto/server/fault"
	"github.com/sostenuto/sostenuto/server/rag"
)

type ctxKey int

const (
	principalKey ctxKey = iota + 100
	pendingKey
)

// maxBearerLen bounds the Authorization header we parse; real tokens are
// well under 2 KiB.
const maxBearerLen = 8 << 10

// requireAuth authenticates the bearer token and puts the caller, as stored
// now, into the request context. Without a valid token: 401.
func (s *Server) requireAuth(next http.Handler) http.Handler { return s.authenticate(next, false) }

// requireAuthDeferred is requireAuth for a handler that confirms the
// caller's session itself: a caller this node found live before is let
// through pending (auth.Service.AuthenticateDeferred), with the
// *rag.Pending the handler must settle (rag.Ask, Server.confirm) before it
// answers, reads the caller's data or changes anything.
func (s *Server) requireAuthDeferred(next http.Handler) http.Handler {
	return s.authenticate(next, true)
}

// authenticate is requireAuth, or requireAuthDeferred when deferred.
func (s *Server) authenticate(next http.Handler, deferred bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r)
		if !ok {
			s.WriteError(w, r, fault.ErrUnauthenticated)
			return
		}
		var p auth.Principal
		var pending bool
		var err error
		if deferred {
			p, pending, err = s.auth.AuthenticateDeferred(r.Context(), token)
		} else {
			p, err = s.auth.Authenticate(r.Context(), token)
		}
		if err != nil {
			s.logger.DebugContext(r.Context(), "authentication failed", "component", "auth",
				"request_id", RequestID(r.Context()), "error", err)
			s.WriteError(w, r, err)
			return
		}
		ctx := context.WithValue(r.Context(), principalKey, p)
		if pending {
			ctx = context.WithValue(ctx, pendingKey, &rag.Pending{User: p.User.ID, Session: p.SessionID, Role: p.User.Role})
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// bearerToken is the request's bearer token, if it has a well-formed one.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(h) > maxBearerLen {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// pendingAsker is the caller still to be confirmed; nil when
// requireAuthDeferred authenticated it in full.
func pendingAsker(r *http.Request) *rag.Pending {
	a, _ := r.Context().Value(pendingKey).(*rag.Pending)
	return a
}

// confirm settles a pending caller before err (nil: nothing) is answered:
// its session and role read in PostgreSQL (one round trip). It returns
// err, or the caller's own failure: 401 when the session ended. Nothing
// for a caller authenticated in full or settled already.
func (s *Server) confirm(r *http.Request, a *rag.Pending, err error) error {
	if a == nil || a.Confirmed {
		return err
	}
	_, role, live, cerr := s.store.SessionVisibleChunks(r.Context(), a.User, a.Session, nil)
	if cerr != nil {
		return cerr
	}
	if serr := a.Settle(role, live); errors.Is(serr, rag.ErrSessionEnded) {
		s.auth.Forget(a.User, a.Session)
		return serr
	}
	return err
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
