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

func (s *Server) relationshipRoutes(r chi.Router) {
	r.Post("/relationships", s.createRelationship)
	r.Get("/relationships", s.listRelationships)
	r.Delete("/relationships/{id}", s.deleteRelationship)
}

type relationshipRequest struct {
	StudentID    *uuid.UUID `json:"student_id"`
	StudentEmail *string    `json:"student_email"`
	TeacherID    *uuid.UUID `json:"teacher_id"`
}

func (s *Server) createRelationship(w http.ResponseWriter, r *http.Request) {
	var in relationshipRequest
	if err := DecodeJSON(w, r, s.bodyLimit(smallBody), &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	teacherID, err := access.CreateRelationship(actor(r), deref(in.TeacherID))
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	student, err := s.relationshipStudent(r, in)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	if err := s.checkTeacher(r, teacherID); err != nil {
		s.WriteError(w, r, err)
		return
	}
	rel, err := s.store.CreateRelationship(r.Context(), teacherID, student.ID)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	s.setIndexLSN(w, r) // the student's scope changed (scope caches)
	WriteJSON(w, http.StatusCreated, newRelationshipResponse(rel))
}

// relationshipStudent resolves the student named by id or email: exactly
// one must be given, and it must be a student account.
func (s *Server) relationshipStudent(r *http.Request, in relationshipRequest) (store.User, error) {
	var (
		u   store.User
		err error
	)
	switch {
	case (in.StudentID == nil) == (in.StudentEmail == nil):
		return u, Invalid("give exactly one of student_id and student_email",
			FieldError{Field: "student_id", Message: "exactly one of student_id and student_email"})
	case in.StudentID != nil:
		u, err = s.store.UserByID(r.Context(), *in.StudentID)
	default:
		email, nerr := auth.NormalizeEmail(*in.StudentEmail)
		if nerr != nil {
			return u, Invalid("student_email is not an email address", FieldError{Field: "student_email", Message: "not an email address"})
		}
		u, err = s.store.UserByEmail(r.Context(), email)
	}
	if errors.Is(err, fault.ErrNotFound) {
		return u, NewProblem(http.StatusNotFound, CodeNotFound, "no such student")
	}
	if err != nil {
		return u, err
	}
	if u.Role != store.RoleStudent {
		return u, Invalid("that account is not a student", FieldError{Field: "student", Message: "is not a student account"})
	}
	return u, nil
}

// checkTeacher makes sure an admin-named teacher is a teacher account.
func (s *Server) checkTeacher(r *http.Request, id uuid.UUID) error {
	if id == actor(r).ID {
		return nil
	}
	u, err := s.store.UserByID(r.Context(), id)
	if errors.Is(err, fault.ErrNotFound) || (err == nil && u.Role != store.RoleTeacher) {
		return Invalid("teacher_id is not a teacher account", FieldError{Field: "teacher_id", Message: "is not a teacher account"})
	}
	return err
}

func (s *Server) listRelationships(w http.ResponseWriter, r *http.Request) {
	page, err := pageParams(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	who := actor(r).ID
	if actor(r).IsAdmin() {
		who = uuid.Nil // all
	}
	items, next, err := s.store.ListRelationships(r.Context(), who, page)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, newList(mapItems(items, newRelationshipResponse), next))
}

func (s *Server) deleteRelationship(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	if _, err := s.access.Relationship(r.Context(), actor(r), id); err != nil {
		s.WriteError(w, r, err)
		return
	}
	if err := s.store.DeleteRelationship(r.Context(), id); err != nil {
		s.WriteError(w, r, err)
		return
	}
	s.setIndexLSN(w, r) // from there, no node answers from the old scope
	w.WriteHeader(http.StatusNoContent)
}

// pathID parses the {id} URL parameter; a malformed id is a missing object
// (404, like any id that names nothing).
func pathID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		return uuid.Nil, fault.ErrNotFound
	}
	return id, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// relationshipResponse is a teacher-student link as the API answers it.
type relationshipResponse struct {
	ID        uuid.UUID `json:"id"`
	TeacherID uuid.UUID `json:"teacher_id"`
	StudentID uuid.UUID `json:"student_id"`
	CreatedAt time.Time `json:"created_at"`
}

func newRelationshipResponse(r store.Relationship) relationshipResponse {
	return relationshipResponse{ID: r.ID, TeacherID: r.TeacherID, StudentID: r.StudentID, CreatedAt: r.CreatedAt}
}
