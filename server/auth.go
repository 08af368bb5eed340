package server

import (
	"github.com/google/uuid"
	"github.com/sostenuto/sostenuto/server/store"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/sostenuto/sostenuto/server/auth"
)

func (s *Server) authRoutes(r chi.Router) {
	r.With(s.limitAuth).Post("/auth/register", s.register)
	r.With(s.limitAuth).Post("/auth/login", s.login)
	r.With(s.limitAuth).Post("/auth/refresh", s.refresh)
	r.With(s.limitAuth).Post("/auth/logout", s.logout)
	r.With(s.requireAuth, s.limitUser).Get("/auth/me", s.me)
	r.Get("/auth/jwks.json", s.jwks)
}

// jwks publishes the public keys of access tokens, for the edge and any
// other verifier outside the node.
func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	body, err := s.auth.JWKS()
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(body) //nolint:errcheck // the client went away
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var in auth.Registration
	if err := DecodeJSON(w, r, s.bodyLimit(smallBody), &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	sess, err := s.auth.Register(r.Context(), in)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	noStore(w)
	WriteJSON(w, http.StatusCreated, newSessionResponse(sess))
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var in loginRequest
	if err := DecodeJSON(w, r, s.bodyLimit(smallBody), &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	if in.Email == "" || in.Password == "" {
		s.WriteError(w, r, Invalid("email and password are required", missing(map[string]string{"email": in.Email, "password": in.Password})...))
		return
	}
	sess, err := s.auth.Login(r.Context(), in.Email, in.Password, s.clientIP(r))
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	noStore(w)
	WriteJSON(w, http.StatusOK, newSessionResponse(sess))
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// refreshToken reads the {refresh_token} body of refresh and logout,
// answering the error itself when it is missing or malformed.
func (s *Server) refreshToken(w http.ResponseWriter, r *http.Request) (string, bool) {
	var in refreshRequest
	if err := DecodeJSON(w, r, s.bodyLimit(smallBody), &in); err != nil {
		s.WriteError(w, r, err)
		return "", false
	}
	if in.RefreshToken == "" {
		s.WriteError(w, r, Invalid("refresh_token is required", FieldError{Field: "refresh_token", Message: "required"}))
		return "", false
	}
	return in.RefreshToken, true
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	token, ok := s.refreshToken(w, r)
	if !ok {
		return
	}
	sess, err := s.auth.Refresh(r.Context(), token)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	noStore(w)
	WriteJSON(w, http.StatusOK, newSessionResponse(sess))
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	token, ok := s.refreshToken(w, r)
	if !ok {
		return
	}
	if err := s.auth.Logout(r.Context(), token); err != nil {
		s.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	WriteJSON(w, http.StatusOK, newUserResponse(principal(r).User))
}

// clientIP is the caller's address: the peer, or what a trusted proxy
// (the edge) says in X-Forwarded-For.
func (s *Server) clientIP(r *http.Request) string { return s.cfg.TrustedProxies.Of(r) }

func noStore(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }

// missing lists the empty fields of m as field errors, in a stable order.
func missing(m map[string]string) []FieldError {
	var out []FieldError
	for _, k := range sortedKeys(m) {
		if m[k] == "" {
			out = append(out, FieldError{Field: k, Message: "required"})
		}
	}
	return out
}

// userResponse is an account as the API answers it.
type userResponse struct {
	ID          uuid.UUID `json:"id"`
	Email       string    `json:"email"`
	DisplayName string    `json:"display_name"`
	Role        string    `json:"role"`
	CreatedAt   time.Time `json:"created_at"`
}

func newUserResponse(u store.User) userResponse {
	return userResponse{ID: u.ID, Email: u.Email, DisplayName: u.DisplayName, Role: u.Role, CreatedAt: u.CreatedAt}
}

// sessionResponse is what register, login and refresh answer.
type sessionResponse struct {
	User         userResponse `json:"user"`
	AccessToken  string       `json:"access_token"`
	RefreshToken string       `json:"refresh_token"`
	TokenType    string       `json:"token_type"`
	ExpiresIn    int          `json:"expires_in"`
}

func newSessionResponse(s auth.Session) sessionResponse {
	return sessionResponse{User: newUserResponse(s.User), AccessToken: s.AccessToken,
		RefreshToken: s.RefreshToken, TokenType: s.TokenType, ExpiresIn: s.ExpiresIn}
}
