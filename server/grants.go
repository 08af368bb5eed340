package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/access"
	"github.com/sostenuto/sostenuto/server/auth"
	"github.com/sostenuto/sostenuto/server/fault"
	"github.com/sostenuto/sostenuto/server/store"
)

type grantRequest struct {
	UserID     *uuid.UUID `json:"user_id"`
	Email      *string    `json:"email"`
	Permission string     `json:"permission"`
}

// putGrant gives a user view, edit or admin on a project: 201 for a new
// grant, 200 for a changed one. Nobody grants more than they hold.
func (s *Server) putGrant(w http.ResponseWriter, r *http.Request) {
	var in grantRequest
	if err := DecodeJSON(w, r, s.bodyLimit(smallBody), &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	p, held, err := s.loadProject(r, access.Admin)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	want, ok := access.ParsePermission(in.Permission)
	if !ok {
		s.WriteError(w, r, Invalid("permission must be view, edit or admin", FieldError{"permission", "must be view, edit or admin"}))
		return
	}
	if !access.CanGrant(held, want) {
		s.WriteError(w, r, NewProblem(http.StatusForbidden, CodeForbidden, "nobody grants more than they hold"))
		return
	}
	grantee, err := s.grantee(r, in)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	if grantee.ID == p.OwnerID {
		s.WriteError(w, r, Invalid("the owner holds admin on its project already", FieldError{"user_id", "is the project's owner"}))
		return
	}
	g, created, err := s.store.PutGrant(r.Context(), actor(r).ID, p.ID, grantee.ID, want.String())
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	s.setIndexLSN(w, r)
	WriteJSON(w, status, newGrantResponse(g))
}

// setIndexLSN answers, after a committed write that changes who sees
// annotation chunks (a grant, a revoke, a project deleted) or a student's
// teachers (a relationship made or removed), the WAL
// position from which every node's index holds it (X-Index-LSN; omitted
// when the position cannot be read).
func (s *Server) setIndexLSN(w http.ResponseWriter, r *http.Request) {
	lsn, err := s.store.WALPosition(r.Context())
	if err != nil {
		s.logger.Warn("read the WAL position", "component", "api", "error", err)
		return
	}
	s.ackWrite(w, lsn)
}

// grantee resolves the user named by id or email; exactly one is given.
func (s *Server) grantee(r *http.Request, in grantRequest) (store.User, error) {
	var (
		u   store.User
		err error
	)
	switch {
	case (in.UserID == nil) == (in.Email == nil):
		return u, Invalid("give exactly one of user_id and email", FieldError{"user_id", "exactly one of user_id and email"})
	case in.UserID != nil:
		u, err = s.store.UserByID(r.Context(), *in.UserID)
	default:
		email, nerr := auth.NormalizeEmail(*in.Email)
		if nerr != nil {
			return u, Invalid("email is not an email address", FieldError{"email", "not an email address"})
		}
		u, err = s.store.UserByEmail(r.Context(), email)
	}
	if errors.Is(err, fault.ErrNotFound) {
		return u, NewProblem(http.StatusNotFound, CodeNotFound, "no such user")
	}
	return u, err
}

func (s *Server) listGrants(w http.ResponseWriter, r *http.Request) {
	p, _, err := s.loadProject(r, access.Admin)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	gs, err := s.store.ListGrants(r.Context(), actor(r).ID, p.ID)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, newList(mapItems(gs, newGrantResponse), ""))
}

func (s *Server) deleteGrant(w http.ResponseWriter, r *http.Request) {
	p, _, err := s.loadProject(r, access.Admin)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	user, err := uuid.Parse(chi.URLParam(r, "user_id"))
	if err != nil {
		s.WriteError(w, r, fault.ErrNotFound)
		return
	}
	if err := s.store.DeleteGrant(r.Context(), actor(r).ID, p.ID, user); err != nil {
		s.WriteError(w, r, err)
		return
	}
	s.setIndexLSN(w, r)
	w.WriteHeader(http.StatusNoContent)
}

// grantResponse is a user's permission on a project as the API answers it.
type grantResponse struct {
	ProjectID  uuid.UUID  `json:"project_id"`
	UserID     uuid.UUID  `json:"user_id"`
	Permission string     `json:"permission"`
	GrantedBy  *uuid.UUID `json:"granted_by"`
	CreatedAt  time.Time  `json:"created_at"`
}

func newGrantResponse(g store.Grant) grantResponse {
	return grantResponse{ProjectID: g.ProjectID, UserID: g.UserID, Permission: g.Permission, GrantedBy: g.GrantedBy, CreatedAt: g.CreatedAt}
}
