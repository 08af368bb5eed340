package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/store"
)

func (s *Server) feedbackRoutes(r chi.Router) {
	r.Post("/chat/messages/{id}/feedback", s.rateMessage)
	r.With(s.requireAdmin).Get("/chat/feedback", s.listFeedback)
}

// maxFeedbackComment bounds a feedback comment (characters).
const maxFeedbackComment = 2000

type feedbackRequest struct {
	Rating  string  `json:"rating"`
	Comment *string `json:"comment"`
}

func (in feedbackRequest) validate() (rating, comment string, err error) {
	var errs []FieldError
	if in.Rating != "up" && in.Rating != "down" {
		errs = append(errs, FieldError{"rating", `must be "up" or "down"`})
	}
	comment = strings.TrimSpace(deref(in.Comment))
	if utf8.RuneCountInString(comment) > maxFeedbackComment {
		errs = append(errs, FieldError{"comment", fmt.Sprintf("must be at most %d characters", maxFeedbackComment)})
	}
	if strings.ContainsRune(comment, 0) {
		errs = append(errs, FieldError{"comment", "must not contain NUL characters"})
	}
	if len(errs) > 0 {
		return "", "", Invalid("the feedback has invalid fields", errs...)
	}
	return in.Rating, comment, nil
}

// rateMessage records the session owner's rating of an answer (a new one
// replaces it): 404 for a message that is not the caller's, 400 for a
// question (the caller's own message, so its existence is no secret).
func (s *Server) rateMessage(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	var in feedbackRequest
	if err := DecodeJSON(w, r, s.bodyLimit(queryBody), &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	rating, comment, err := in.validate()
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	err = s.store.RateMessage(r.Context(), actor(r).ID, id, rating, comment)
	if errors.Is(err, store.ErrNotAnAnswer) {
		err = Invalid("feedback is given on answers (assistant messages), not on questions",
			FieldError{"id", "must name an assistant message"})
	}
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	s.metrics.feedback.WithLabelValues(rating).Inc()
	w.WriteHeader(http.StatusNoContent)
}

// listFeedback lists rated answers for administrators, most recently
// rated first, optionally of one rating.
func (s *Server) listFeedback(w http.ResponseWriter, r *http.Request) {
	page, err := pageParams(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	rating := r.URL.Query().Get("rating")
	if rating != "" && rating != "up" && rating != "down" {
		s.WriteError(w, r, Invalid("rating filters by up or down", FieldError{"rating", `must be "up" or "down"`}))
		return
	}
	items, next, err := s.store.ListFeedback(r.Context(), actor(r).ID, rating, page)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	noStore(w)
	WriteJSON(w, http.StatusOK, newList(mapItems(items, newFeedbackResponse), next))
}

// feedbackResponse is a rated answer as administrators review it.
type feedbackResponse struct {
	MessageID uuid.UUID       `json:"message_id"`
	Question  string          `json:"question"`
	Answer    string          `json:"answer"`
	Sources   json.RawMessage `json:"sources"`
	Rating    string          `json:"rating"`
	Comment   string          `json:"comment"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

func newFeedbackResponse(f store.Feedback) feedbackResponse {
	return feedbackResponse{MessageID: f.MessageID, Question: f.Question, Answer: f.Answer, Sources: f.Sources,
		Rating: f.Rating, Comment: f.Comment, CreatedAt: f.CreatedAt, UpdatedAt: f.UpdatedAt}
}
